"""Every verdict and hint, table-driven, through `KeyVerifier.verify` over a stub key state
(a dict by secret hash standing in for the follower: the verdict logic is pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.key_format import Malformed, generate_secret, hash_secret, hint
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from streams.client.key_follower import NotReady
from streams.client.verdicts import LIVE_IN_DEVELOPMENT, TEST_IN_PRODUCTION, Verdict
from streams.client.verifier import KeyVerifier

NOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
LIVE = generate_secret("live")
TEST = generate_secret("test")


def record(secret: str, key_id: str, **changes: object) -> KeyRecord:
    key_type = KeyType.TEST if secret.startswith("pk_test_") else KeyType.LIVE
    base = KeyRecord(
        account_id="acc_verdicts",
        key_id=key_id,
        name=key_id,
        key_type=key_type,
        access=KeyAccess.FULL,
        status=KeyStatus.ACTIVE,
        secret_hash=hash_secret(secret),
        hint=hint(secret),
        created_at=NOW - timedelta(days=1),
        created_by="test",
        updated_at=NOW - timedelta(days=1),
        seq=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class StubState:
    """The follower's read API over fixed records."""

    def __init__(self, records: list[KeyRecord], ready: bool = True) -> None:
        self._by_hash = {r.secret_hash: r for r in records}
        self.ready = ready
        self.lookups = 0

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        if not self.ready:
            raise NotReady("still reading the key-events topic; retry in a moment")
        self.lookups += 1
        return self._by_hash.get(secret_hash)


def verifier(*records: KeyRecord, **options: object) -> KeyVerifier:
    return KeyVerifier(StubState(list(records)), **options)  # type: ignore[arg-type]


SECRETS = {name: generate_secret("live") for name in ("revoked", "deleted", "expired", "cidr")}
SECRETS |= {"rolled": generate_secret("live"), "future": generate_secret("live")}
RECORDS = [
    record(LIVE, "key_live"),
    record(TEST, "key_test"),
    record(
        SECRETS["revoked"], "key_revoked", status=KeyStatus.REVOKED, revoked_at=NOW - timedelta(1)
    ),
    record(SECRETS["deleted"], "key_deleted", status=KeyStatus.DELETED),
    record(SECRETS["expired"], "key_expired", expires_at=NOW - timedelta(seconds=1)),
    record(SECRETS["rolled"], "key_rolled", expires_at=NOW, replaced_by="key_new"),
    record(SECRETS["future"], "key_future", expires_at=NOW + timedelta(seconds=1)),
    record(SECRETS["cidr"], "key_cidr", allowed_cidrs=("203.0.113.0/24", "2001:db8::/32")),
]

_BAD_CHECKSUM = LIVE[:-1] + ("A" if LIVE[-1] != "A" else "B")

MALFORMED = [
    ("", Malformed.EMPTY, "no key was given"),
    (f" {LIVE}", Malformed.WHITESPACE, "whitespace"),
    (f"{LIVE}\t", Malformed.WHITESPACE, "whitespace"),
    (f'"{LIVE}"', Malformed.QUOTED, "quotes"),
    (f"'{LIVE}'", Malformed.QUOTED, "quotes"),
    (LIVE[:20] + "\n" + LIVE[20:], Malformed.NEWLINE, "line break"),
    (f"{LIVE}\r\n", Malformed.NEWLINE, "line break"),
    (LIVE[:-3], Malformed.TRUNCATED, "cut off"),
    (LIVE + "x", Malformed.TOO_LONG, "appended"),
    ("sk_live_" + LIVE[8:], Malformed.WRONG_PREFIX, "pk_live_ or pk_test_"),
    ("pk_prod_" + LIVE[8:], Malformed.WRONG_PREFIX, "pk_live_ or pk_test_"),
    (_BAD_CHECKSUM, Malformed.CHECKSUM, "encoding issues"),
    (LIVE[:-6] + "ÄÄÄÄÄÄ", Malformed.ALPHABET, "encoding issues"),
]


@pytest.mark.parametrize(
    ("presented", "reason", "phrase"),
    MALFORMED,
    ids=[f"{i}-{reason.value}" for i, (_, reason, _) in enumerate(MALFORMED)],  # no random secret
)
def test_malformed_keys_get_the_hint(presented: str, reason: Malformed, phrase: str) -> None:
    state = StubState(RECORDS)
    result = KeyVerifier(state).verify(presented, now=NOW)  # type: ignore[arg-type]
    assert result.verdict is Verdict.MALFORMED
    assert result.hint is reason
    assert phrase in result.message
    assert result.key_id is None


KNOWN = [
    (LIVE, None, Verdict.VALID, "key_live", "is valid"),
    (TEST, None, Verdict.VALID, "key_test", "watermark"),
    (generate_secret("live"), None, Verdict.UNKNOWN, None, "no key has this secret"),
    (SECRETS["revoked"], None, Verdict.REVOKED, "key_revoked", "was revoked at"),
    (SECRETS["deleted"], None, Verdict.DELETED, "key_deleted", "was deleted"),
    (SECRETS["expired"], None, Verdict.EXPIRED, "key_expired", "create a new key"),
    (SECRETS["rolled"], None, Verdict.EXPIRED, "key_rolled", "use its replacement key_new"),
    (SECRETS["future"], None, Verdict.VALID, "key_future", "is valid"),
    (SECRETS["cidr"], None, Verdict.IP_NOT_ALLOWED, "key_cidr", "pass client_ip"),
    (SECRETS["cidr"], "198.51.100.7", Verdict.IP_NOT_ALLOWED, "key_cidr", "198.51.100.7"),
    (SECRETS["cidr"], "not an ip", Verdict.IP_NOT_ALLOWED, "key_cidr", "not an ip"),
    (SECRETS["cidr"], "203.0.113.7", Verdict.VALID, "key_cidr", "is valid"),
    (SECRETS["cidr"], "::ffff:203.0.113.7", Verdict.VALID, "key_cidr", "is valid"),
    (SECRETS["cidr"], "2001:db8:1::5", Verdict.VALID, "key_cidr", "is valid"),
    (SECRETS["cidr"], "2001:db9::5", Verdict.IP_NOT_ALLOWED, "key_cidr", "allow-list"),
]


@pytest.mark.parametrize(
    ("presented", "client_ip", "verdict", "key_id", "phrase"),
    KNOWN,
    ids=[f"{i}-{case[2].value}-{case[3]}" for i, case in enumerate(KNOWN)],  # no random secret
)
def test_well_formed_keys(
    presented: str, client_ip: str | None, verdict: Verdict, key_id: str | None, phrase: str
) -> None:
    result = verifier(*RECORDS).verify(presented, client_ip=client_ip, now=NOW)
    assert (result.verdict, result.key_id) == (verdict, key_id), result.message
    assert phrase in result.message
    assert result.valid is (verdict is Verdict.VALID)
    if key_id is not None:
        assert result.account_id == "acc_verdicts"
        assert result.watermark is (result.key_type is KeyType.TEST)


@pytest.mark.parametrize(
    ("environment", "secret", "warning"),
    [
        ("production", LIVE, None),
        ("production", TEST, TEST_IN_PRODUCTION),
        ("development", LIVE, LIVE_IN_DEVELOPMENT),
        ("development", TEST, None),
    ],
    ids=["production-live", "production-test", "development-live", "development-test"],
)
def test_environment_flags(environment: str, secret: str, warning: str | None) -> None:
    result = verifier(*RECORDS, environment=environment).verify(secret, now=NOW)
    assert result.verdict is Verdict.VALID
    assert result.warning == warning
    assert (warning is not None) is ("warning:" in result.message)


def test_not_ready_raises_rather_than_unknown() -> None:
    state = StubState(RECORDS, ready=False)
    check = KeyVerifier(state)  # type: ignore[arg-type]
    with pytest.raises(NotReady, match="retry"):
        check.verify(generate_secret("live"))
    assert check.verify("nope").verdict is Verdict.MALFORMED  # needs no state


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None, str | None, datetime]] = []

    def record(
        self,
        outcome: str,
        key_id: str | None,
        account_id: str | None,
        client_ip: str | None,
        at: datetime,
        presented_digest: str | None = None,
    ) -> None:
        self.seen.append((outcome, key_id, account_id, client_ip, at))


def test_every_verdict_goes_to_the_outcome_sink() -> None:
    sink = Outcomes()
    check = verifier(*RECORDS, outcomes=sink)
    check.verify(LIVE, client_ip="192.0.2.1", now=NOW)
    check.verify(" x", now=NOW)
    check.verify(SECRETS["revoked"], client_ip="192.0.2.2", now=NOW)
    assert sink.seen == [
        ("valid", "key_live", "acc_verdicts", "192.0.2.1", NOW),
        ("malformed", None, None, None, NOW),
        ("revoked", "key_revoked", "acc_verdicts", "192.0.2.2", NOW),
    ]


def test_renders_of_a_test_key_are_counted_and_refused_after_100() -> None:
    check = verifier(*RECORDS)
    answers = [check.verify(TEST, render=True, now=NOW) for _ in range(101)]
    assert [a.quota.remaining for a in answers[:100] if a.quota] == list(range(99, -1, -1))
    last = answers[-1]
    assert last.verdict is Verdict.QUOTA_EXCEEDED
    assert last.quota is not None and not last.quota.admitted
    assert last.quota.reset_s == 12 * 3600  # NOW is 12:00 UTC
    assert "00:00 UTC" in last.message
    live = check.verify(LIVE, render=True, now=NOW)
    assert live.verdict is Verdict.VALID and live.quota is None  # no render quota
    tomorrow = check.verify(TEST, render=True, now=NOW + timedelta(hours=12))
    assert tomorrow.quota is not None and tomorrow.quota.remaining == 99
