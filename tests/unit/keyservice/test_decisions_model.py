"""Hypothesis over command sequences: the key service's decisions, folded by the ledger,
give the same accounts and keys as a small model written from the product rules, and
every refused command gets the error the model expects. The commands include allow-lists,
expiring keys and rolls; the clock moves a second per command, so keys expire mid-run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.key_ledger import AccountLedger, apply
from schemas.keys import KeyAccess, KeyType, RevokeReason
from schemas.plans import Plan
from streams.keyservice.commands import (
    ChangePlan,
    Command,
    CommandRefused,
    Context,
    CreateAccount,
    CreateKey,
    DeleteKey,
    RenameKey,
    RevokeKey,
    RollKey,
    SetAllowList,
    decide,
)

LIMITS = {"free": (2, 5), "pro": (10, 10), "business": (50, 50), "enterprise": (None, None)}
ADMIN_LIMIT = 5
ACCOUNTS = ["acc_one", "acc_two"]
KEY_IDS = [f"key_model{i:04d}" for i in range(200)]


CIDR_INPUTS: dict[tuple[str, ...], tuple[str, ...] | None] = {
    (): (),
    ("10.1.2.3/8",): ("10.0.0.0/8",),
    ("203.0.113.7",): ("203.0.113.7/32",),
    ("2001:DB8::1/32", "10.0.0.0/8", "10.0.0.0/8"): ("2001:db8::/32", "10.0.0.0/8"),
    ("::ffff:10.0.0.1",): ("::ffff:a00:1/128",),
    ("nope",): None,
    ("10.0.0.0/33",): None,
}
"""Allow-lists as given, and as stored (None: refused, `invalid_cidr`)."""
OVERLAP_CHOICES = [timedelta(0), timedelta(seconds=5), timedelta(minutes=15), timedelta(days=7)]
"""Allowed overlaps, and one that is not (5 s: `invalid_overlap`)."""


@dataclass
class ModelKey:
    name: str
    limit_class: str
    status: str = "active"
    allowed: tuple[str, ...] = ()
    expires_at: datetime | None = None
    replaces: str | None = None
    replaced_by: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass
class ModelAccount:
    plan: str
    keys: dict[str, ModelKey] = field(default_factory=dict)

    def active(self, limit_class: str, now: datetime) -> int:
        return sum(
            1
            for k in self.keys.values()
            if k.status == "active"
            and k.limit_class == limit_class
            and k.replaced_by is None
            and not k.expired(now)
        )

    def limit(self, limit_class: str) -> int | None:
        if limit_class == "admin":
            return ADMIN_LIMIT
        live, test = LIMITS[self.plan]
        return live if limit_class == "live" else test


def _bad_name(name: str) -> bool:
    control = any(c in name for c in "\t\n\r\x00")
    return name.strip() == "" or name != name.strip() or len(name) > 100 or control


def _model_key(model: dict[str, ModelAccount], cmd: Any) -> ModelKey | str:
    account = model[cmd.account_id]
    key = account.keys.get(cmd.key_id)
    if key is None or key.status == "deleted":
        return "key_not_found"
    return key


def _model_create(account: ModelAccount, cmd: CreateKey, new_key: str, now: datetime) -> str | None:
    if _bad_name(cmd.name):
        return "invalid_name"
    allowed = CIDR_INPUTS[cmd.allowed_cidrs]
    if allowed is None:
        return "invalid_cidr"
    cls = "admin" if cmd.access is KeyAccess.ADMIN else cmd.key_type.value
    limit = account.limit(cls)
    if limit is not None and account.active(cls, now) >= limit:
        return "admin_limit_reached" if cls == "admin" else "plan_limit_reached"
    expires = None if cmd.expires_in is None else now + cmd.expires_in
    account.keys[new_key] = ModelKey(cmd.name, cls, allowed=allowed, expires_at=expires)
    return None


def _model_roll(
    account: ModelAccount, key_id: str, cmd: RollKey, new_key: str, now: datetime
) -> str | None:
    key = account.keys[key_id]
    if key.status == "revoked":
        return "key_revoked"
    if key.replaced_by is not None:
        return "key_already_replaced"
    if key.expired(now):
        return "key_expired"
    expires = now + cmd.overlap
    key.expires_at = expires if key.expires_at is None else min(key.expires_at, expires)
    key.replaced_by = new_key
    account.keys[new_key] = ModelKey(
        key.name, key.limit_class, allowed=key.allowed, replaces=key_id
    )
    return None


def _model_change(key: ModelKey, cmd: Command, now: datetime) -> str | None:
    if isinstance(cmd, RenameKey):
        if _bad_name(cmd.name):
            return "invalid_name"
        key.name = cmd.name
    elif isinstance(cmd, SetAllowList):
        allowed = CIDR_INPUTS[cmd.allowed_cidrs]
        if allowed is None:
            return "invalid_cidr"
        key.allowed = allowed
    elif isinstance(cmd, RevokeKey):
        key.status = "revoked"
    elif isinstance(cmd, DeleteKey):
        if key.status == "active" and not key.expired(now):
            return "key_not_revoked"
        key.status = "deleted"
    return None


def model_step(
    model: dict[str, ModelAccount], cmd: Command, new_key: str, now: datetime
) -> str | None:
    """Apply `cmd` to the model; the error code, or None when it is accepted."""
    if isinstance(cmd, CreateAccount):
        existing = model.get(cmd.account_id)
        if existing is None:
            model[cmd.account_id] = ModelAccount(cmd.plan.value)
            return None
        return None if existing.plan == cmd.plan.value else "account_exists"
    if cmd.account_id not in model:
        return "account_not_found"
    account = model[cmd.account_id]
    if isinstance(cmd, ChangePlan):
        account.plan = cmd.plan.value
        return None
    if isinstance(cmd, CreateKey):
        return _model_create(account, cmd, new_key, now)
    if isinstance(cmd, RollKey) and cmd.overlap == timedelta(seconds=5):
        return "invalid_overlap"
    key = _model_key(model, cmd)
    if isinstance(key, str):
        return key
    if isinstance(cmd, RollKey):
        return _model_roll(account, cmd.key_id, cmd, new_key, now)
    return _model_change(key, cmd, now)


valid_names = st.sampled_from(["Production web", "Staging", "Key 1", "ok"])
names = st.one_of(
    valid_names,
    valid_names,
    valid_names,
    st.sampled_from(["", " padded", "x" * 101, "tab\tname", "new\nline"]),
)
plans = st.sampled_from(list(Plan))
accounts = st.sampled_from(ACCOUNTS)
key_refs = st.integers(min_value=0, max_value=20)
cidr_inputs = st.sampled_from(list(CIDR_INPUTS))
expiries = st.sampled_from([None, None, timedelta(seconds=3), timedelta(seconds=20)])


def commands() -> st.SearchStrategy[tuple[str, Any]]:
    create = st.tuples(
        st.just("create"),
        st.tuples(
            accounts,
            names,
            st.sampled_from(list(KeyType)),
            st.sampled_from(list(KeyAccess)),
            cidr_inputs,
            expiries,
        ),
    )
    return st.one_of(
        create,
        create,
        create,
        st.tuples(st.just("account"), st.tuples(accounts, plans)),
        st.tuples(st.just("plan"), st.tuples(accounts, plans)),
        st.tuples(st.just("rename"), st.tuples(accounts, key_refs, names)),
        st.tuples(st.just("allow"), st.tuples(accounts, key_refs, cidr_inputs)),
        st.tuples(st.just("roll"), st.tuples(accounts, key_refs, st.sampled_from(OVERLAP_CHOICES))),
        st.tuples(st.just("roll"), st.tuples(accounts, key_refs, st.sampled_from(OVERLAP_CHOICES))),
        st.tuples(st.just("revoke"), st.tuples(accounts, key_refs)),
        st.tuples(st.just("delete"), st.tuples(accounts, key_refs)),
    )


def _command(kind: str, args: Any) -> Command:
    if kind == "account":
        return CreateAccount(args[0], args[1])
    if kind == "plan":
        return ChangePlan(args[0], args[1])
    if kind == "create":
        return CreateKey(
            args[0], args[1], args[2], args[3], allowed_cidrs=args[4], expires_in=args[5]
        )
    key_id = KEY_IDS[args[1]]
    if kind == "rename":
        return RenameKey(args[0], key_id, args[2])
    if kind == "allow":
        return SetAllowList(args[0], key_id, args[2])
    if kind == "roll":
        return RollKey(args[0], key_id, args[2])
    if kind == "revoke":
        return RevokeKey(args[0], key_id, RevokeReason.COMPROMISED)
    return DeleteKey(args[0], key_id)


ADMIN_CREATES = [("create", ("acc_one", "Ops", KeyType.LIVE, KeyAccess.ADMIN, (), None))] * 7
FREE_FILL = [
    ("create", ("acc_two", "Web", t, KeyAccess.FULL, (), None)) for t in [KeyType.TEST] * 6
]
LIVE = ("acc_one", "Web", KeyType.LIVE, KeyAccess.FULL, ("203.0.113.7",), None)
EXPIRING = ("acc_one", "Web", KeyType.LIVE, KeyAccess.FULL, (), timedelta(seconds=3))
ROLLS = [
    ("create", LIVE),
    ("create", LIVE),
    ("create", LIVE),
    ("roll", ("acc_one", 0, timedelta(minutes=15))),
    ("roll", ("acc_one", 0, timedelta(0))),
    ("roll", ("acc_one", 2, timedelta(0))),
    ("roll", ("acc_one", 3, timedelta(days=7))),
    ("create", LIVE),
    ("revoke", ("acc_one", 1)),
    ("create", LIVE),
    ("roll", ("acc_one", 1, timedelta(0))),
    ("delete", ("acc_one", 2)),
    ("allow", ("acc_one", 4, ("nope",))),
    ("allow", ("acc_one", 4, ("10.1.2.3/8",))),
]
EXPIRIES = [
    ("plan", ("acc_one", Plan.FREE)),
    ("create", EXPIRING),
    ("create", EXPIRING),
    ("create", LIVE),
    ("rename", ("acc_one", 0, "Production web")),
    ("rename", ("acc_one", 0, "Staging")),
    ("create", LIVE),
    ("delete", ("acc_one", 3)),
]


@settings(max_examples=300, deadline=None)
@example([Plan.FREE, Plan.FREE], [*ADMIN_CREATES, *FREE_FILL, ("revoke", ("acc_two", 7))])
@example([Plan.FREE, Plan.FREE], ROLLS)
@example([Plan.FREE, Plan.FREE], EXPIRIES)
@given(
    st.lists(
        st.sampled_from([Plan.FREE, Plan.FREE, Plan.PRO, Plan.ENTERPRISE]), min_size=2, max_size=2
    ),
    st.lists(commands(), min_size=10, max_size=150),
)
def test_decisions_agree_with_the_model(opening: list[Plan], later: list[tuple[str, Any]]) -> None:
    steps = [("account", (a, p)) for a, p in zip(ACCOUNTS, opening, strict=True)] + later
    key_ids = iter(KEY_IDS)
    event_ids = (UUID(int=i) for i in itertools.count(1))
    clock = itertools.count()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    model: dict[str, ModelAccount] = {}
    ledgers: dict[str, AccountLedger | None] = {}
    now = t0
    for kind, args in steps:
        cmd = _command(kind, args)
        now = t0 + timedelta(seconds=next(clock))
        ctx = Context(
            now=now,
            actor="key_actor0001",
            source_ip=None,
            new_event_id=lambda: next(event_ids),
            new_key_id=lambda: next(key_ids),
            new_secret=lambda t: f"pk_{t}_secret",
        )
        ledger = ledgers.get(cmd.account_id)
        try:
            decision = decide(ledger, cmd, ctx)
            error = None
        except CommandRefused as refused:
            decision, error = None, refused.code
        made = decision.key_id if decision is not None and decision.events else None
        assert error == model_step(model, cmd, made or "", now), (cmd, error)
        for event in decision.events if decision else []:
            ledger, refusal = apply(ledger, event)
            assert refusal is None
        ledgers[cmd.account_id] = ledger
    for account_id, account in model.items():
        ledger = ledgers[account_id]
        assert ledger is not None
        assert ledger.plan.value == account.plan
        got = {
            k: (r.name, r.limit_class, r.status.value, r.allowed_cidrs, r.expires_at)
            for k, r in ledger.keys.items()
        }
        assert got == {
            k: (m.name, m.limit_class, m.status, m.allowed, m.expires_at)
            for k, m in account.keys.items()
        }
        links = {k: (r.replaces, r.replaced_by) for k, r in ledger.keys.items()}
        assert links == {k: (m.replaces, m.replaced_by) for k, m in account.keys.items()}
        expired = {k for k, r in ledger.keys.items() if r.status_at(now).value == "expired"}
        assert expired == {
            k for k, m in account.keys.items() if m.status == "active" and m.expired(now)
        }
        for cls in ("live", "test", "admin"):
            assert ledger.count(cls, now) == account.active(cls, now)
