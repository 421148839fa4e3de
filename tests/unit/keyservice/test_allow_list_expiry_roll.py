"""Allow-lists, expiry and rolls, decided and folded: every refusal with its code, the
roll's one event and what it does to both keys, and the plan counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from schemas.key_ledger import AccountLedger, KeyStatus, Refusal, apply, check
from schemas.keys import KeyAccess, KeyRolled, KeyType
from schemas.plans import Plan
from streams.keyservice.commands import (
    OVERLAPS,
    CommandRefused,
    Context,
    CreateAccount,
    CreateKey,
    Decision,
    DeleteKey,
    RevokeKey,
    RollKey,
    SetAllowList,
    create_hash,
    decide,
    duration_of,
    normalised_cidrs,
    overlap_of,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Account:
    """One account driven through decide + apply, with a clock the test moves."""

    def __init__(self, plan: Plan = Plan.FREE) -> None:
        self.now = T0
        self.ledger: AccountLedger | None = None
        self._ids = (UUID(int=i) for i in itertools.count(1))
        self._keys = (f"key_unit{i:04d}" for i in itertools.count(1))
        self.run(CreateAccount("acc_unit", plan))

    def run(self, command: object) -> Decision:
        ctx = Context(
            now=self.now,
            actor="key_admin0001",
            source_ip=None,
            new_event_id=lambda: next(self._ids),
            new_key_id=lambda: next(self._keys),
            new_secret=lambda t: f"pk_{t}_Ab3xsecretsecretsecret",
        )
        decision = decide(self.ledger, command, ctx)  # type: ignore[arg-type]
        for event in decision.events:
            self.ledger, refusal = apply(self.ledger, event)
            assert refusal is None
        return decision

    def refused(self, command: object) -> CommandRefused:
        with pytest.raises(CommandRefused) as caught:
            self.run(command)
        return caught.value

    def create(self, **fields: object) -> str:
        decision = self.run(CreateKey("acc_unit", "Production web", KeyType.LIVE, **fields))  # type: ignore[arg-type]
        assert decision.key_id is not None
        return decision.key_id

    def key(self, key_id: str) -> object:
        assert self.ledger is not None
        return self.ledger.keys[key_id]


def test_a_create_stores_the_allow_list_normalised_and_the_expiry() -> None:
    account = Account()
    key_id = account.create(
        allowed_cidrs=("203.0.113.7", "10.1.2.3/8", "2001:DB8::1/32", "10.0.0.0/8"),
        expires_in=timedelta(days=30),
    )
    assert account.ledger is not None
    record = account.ledger.keys[key_id]
    assert record.allowed_cidrs == ("203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32")
    assert record.expires_at == T0 + timedelta(days=30)
    assert record.status_at(T0 + timedelta(days=30) - timedelta(milliseconds=1)) is KeyStatus.ACTIVE
    assert record.status_at(T0 + timedelta(days=30)) is KeyStatus.EXPIRED
    assert record.status is KeyStatus.ACTIVE  # expiry is never stored as a status


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"allowed_cidrs": ("10.0.0.0/8", "300.1.1.1")}, "invalid_cidr", "allowed_cidrs[1]"),
        ({"allowed_cidrs": (" 10.0.0.1",)}, "invalid_cidr", "' 10.0.0.1'"),
        ({"allowed_cidrs": ("fe80::1%eth0",)}, "invalid_cidr", "fe80::1%eth0"),
        ({"allowed_cidrs": tuple(f"10.0.{i}.0/24" for i in range(101))}, "too_many_cidrs", "100"),
        ({"expires_in": timedelta(0)}, "invalid_expiry", "positive"),
        ({"expires_at": T0}, "invalid_expiry", "not in the future"),
        ({"expires_at": T0.replace(tzinfo=None) + timedelta(days=1)}, "invalid_expiry", "zone"),
        (
            {"expires_at": T0 + timedelta(days=1), "expires_in": timedelta(days=1)},
            "invalid_expiry",
            "not both",
        ),
    ],
)
def test_a_create_with_a_bad_allow_list_or_expiry_is_refused(
    fields: dict[str, object], code: str, says: str
) -> None:
    refused = Account().refused(CreateKey("acc_unit", "Web", KeyType.LIVE, **fields))  # type: ignore[arg-type]
    assert (refused.code, refused.status) == (code, 422)
    assert says in refused.detail


def test_the_allow_list_is_replaced_and_cleared() -> None:
    account = Account()
    key_id = account.create()
    decision = account.run(SetAllowList("acc_unit", key_id, ("192.0.2.0/24", "::1")))
    assert [e.type for e in decision.events] == ["key.allow_list_changed"]
    assert account.key(key_id).allowed_cidrs == ("192.0.2.0/24", "::1/128")  # type: ignore[attr-defined]
    assert account.run(SetAllowList("acc_unit", key_id, ("192.0.2.9/24", "::1"))).events == []
    account.run(SetAllowList("acc_unit", key_id, ()))
    assert account.key(key_id).allowed_cidrs == ()  # type: ignore[attr-defined]
    assert account.refused(SetAllowList("acc_unit", "key_nosuch1", ())).code == "key_not_found"
    assert account.refused(SetAllowList("acc_unit", key_id, ("x",))).code == "invalid_cidr"


@pytest.mark.parametrize("overlap", list(OVERLAPS))
def test_a_roll_is_one_event_linking_both_keys(overlap: str) -> None:
    account = Account()
    old_id = account.create(allowed_cidrs=("198.51.100.0/24",))
    account.now = T0 + timedelta(minutes=1)
    decision = account.run(RollKey("acc_unit", old_id, overlap_of(overlap)))
    (event,) = decision.events
    assert isinstance(event, KeyRolled)
    assert (event.key_id, event.new_key_id) == (old_id, decision.key_id)
    assert decision.secret is not None and decision.secret.startswith("pk_live_")
    assert account.ledger is not None
    old, new = account.ledger.keys[old_id], account.ledger.keys[event.new_key_id]
    assert old.expires_at == account.now + OVERLAPS[overlap]
    assert (old.replaced_by, new.replaces) == (new.key_id, old_id)
    assert (new.name, new.key_type, new.access, new.allowed_cidrs, new.expires_at) == (
        old.name,
        old.key_type,
        old.access,
        old.allowed_cidrs,
        None,
    )
    assert old.status_at(account.now) is (KeyStatus.EXPIRED if overlap == "0" else KeyStatus.ACTIVE)
    assert account.ledger.count("live", account.now) == 1  # the pair counts once


def test_a_roll_keeps_an_earlier_expiry() -> None:
    account = Account()
    old_id = account.create(expires_in=timedelta(hours=2))
    account.run(RollKey("acc_unit", old_id, OVERLAPS["7d"]))
    assert account.key(old_id).expires_at == T0 + timedelta(hours=2)  # type: ignore[attr-defined]


def test_a_roll_needs_no_free_capacity() -> None:
    account = Account(Plan.FREE)  # two live keys
    first, _second = account.create(), account.create()
    assert account.refused(CreateKey("acc_unit", "Web", KeyType.LIVE)).code == "plan_limit_reached"
    account.run(RollKey("acc_unit", first, OVERLAPS["1h"]))
    assert account.refused(CreateKey("acc_unit", "Web", KeyType.LIVE)).code == "plan_limit_reached"
    account.now = T0 + timedelta(hours=1)  # the old key expired: still two counted
    assert account.refused(CreateKey("acc_unit", "Web", KeyType.LIVE)).code == "plan_limit_reached"


def test_an_expired_key_stops_counting_and_may_be_deleted_unrevoked() -> None:
    account = Account(Plan.FREE)
    short = account.create(expires_in=timedelta(minutes=5))
    account.create()
    assert account.refused(DeleteKey("acc_unit", short)).code == "key_not_revoked"
    account.now = T0 + timedelta(minutes=5)
    account.create()  # the expired key no longer counts
    account.run(DeleteKey("acc_unit", short))
    assert account.key(short).status is KeyStatus.DELETED  # type: ignore[attr-defined]


def test_every_roll_refusal() -> None:
    account = Account(Plan.PRO)
    revoked, rolled, expiring = (
        account.create(),
        account.create(),
        account.create(expires_in=timedelta(minutes=1)),
    )
    account.run(RevokeKey("acc_unit", revoked))
    new = account.run(RollKey("acc_unit", rolled, OVERLAPS["1h"])).key_id
    account.now = T0 + timedelta(minutes=1)
    cases = {
        revoked: ("key_revoked", 409, "revoked"),
        rolled: ("key_already_replaced", 409, f"replaced by {new}"),
        expiring: ("key_expired", 409, "expired"),
        "key_nosuch1": ("key_not_found", 404, "no key"),
    }
    for key_id, (code, status, says) in cases.items():
        refused = account.refused(RollKey("acc_unit", key_id, OVERLAPS["1h"]))
        assert (refused.code, refused.status) == (code, status), key_id
        assert says in refused.detail
    account.run(RevokeKey("acc_unit", revoked))
    account.run(DeleteKey("acc_unit", revoked))
    assert account.refused(RollKey("acc_unit", revoked, OVERLAPS["0"])).code == "key_not_found"
    odd = account.refused(RollKey("acc_unit", new or "", timedelta(minutes=30)))
    assert odd.code == "invalid_overlap" and "0, 15m, 1h, 6h, 24h, 7d" in odd.detail


def test_a_roll_is_idempotent_like_a_create() -> None:
    account = Account()
    old_id = account.create()
    digest = create_hash("x", KeyType.LIVE, KeyAccess.FULL)
    first = account.run(RollKey("acc_unit", old_id, OVERLAPS["1h"], "retry-1", digest))
    again = account.run(RollKey("acc_unit", old_id, OVERLAPS["1h"], "retry-1", digest))
    assert (again.replayed, again.key_id, again.events, again.secret) == (
        True,
        first.key_id,
        [],
        None,
    )
    other = account.refused(
        RollKey("acc_unit", old_id, OVERLAPS["1h"], "retry-1", "sha256:" + "0" * 64)
    )
    assert other.code == "idempotency_key_reused"


def test_the_fold_refuses_a_foreign_writers_bad_roll() -> None:
    account = Account()
    old_id = account.create()
    other_id = account.create()
    assert account.ledger is not None
    ledger = account.ledger
    event = KeyRolled(
        account_id="acc_unit",
        seq=ledger.seq + 1,
        prev=ledger.head,
        occurred_at=T0,
        key_id=old_id,
        new_key_id=other_id,
        secret_hash="sha256:" + "a" * 64,
        hint="pk_live_Ab3x",
        old_expires_at=T0,
    )
    assert check(ledger, event) is Refusal.KEY_EXISTS


def test_overlap_and_duration_texts() -> None:
    assert [overlap_of(t) for t in OVERLAPS] == list(OVERLAPS.values())
    with pytest.raises(CommandRefused, match="not one of 0, 15m, 1h, 6h, 24h, 7d"):
        overlap_of("2h")
    assert duration_of("30d") == timedelta(days=30)
    assert duration_of("90m") == timedelta(minutes=90)
    for bad in ("30", "1w", "0d", "-1h", "99999d"):
        with pytest.raises(CommandRefused) as caught:
            duration_of(bad)
        assert caught.value.code == "invalid_duration"
    assert normalised_cidrs(["::ffff:192.0.2.1"]) == ("::ffff:c000:201/128",)
