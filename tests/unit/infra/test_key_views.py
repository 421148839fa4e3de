"""`infra.http.key_views.listing`: the registry's metadata with the projection's usage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from infra.http.key_views import KeyOut, listing
from projections.key_activity import KeyActivity
from projections.queries import KeyRow
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType, RevokeReason

AT = datetime(2026, 1, 5, tzinfo=UTC)


def _record(key_id: str, minutes: int, **changes: object) -> KeyRecord:
    record = KeyRecord(
        account_id="acc_x",
        key_id=key_id,
        name=f"registry name of {key_id}",
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=KeyStatus.ACTIVE,
        secret_hash="sha256:" + "ab" * 32,
        hint="pk_live_Ab3x",
        created_at=AT + timedelta(minutes=minutes),
        created_by="key_admin01",
        updated_at=AT,
        seq=2,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def _row(key_id: str, minutes: int, requests: int) -> KeyRow:
    return KeyRow(
        key_id=key_id,
        name=f"projection name of {key_id}",
        key_type="live",
        access="full",
        status="active",
        hint="pk_live_Zz9y",
        plan="pro",
        created_at=AT + timedelta(minutes=minutes),
        created_by="key_admin01",
        revoked_at=None,
        revoke_reason=None,
        last_used=AT,
        requests_24h=requests,
        requests_7d=requests * 2,
        requests_30d=requests * 3,
    )


def test_registry_metadata_projection_usage_and_projection_only_keys() -> None:
    revoked = _record(
        "key_revoked1",
        1,
        status=KeyStatus.REVOKED,
        revoked_at=AT,
        revoke_reason=RevokeReason.COMPROMISED,
    )
    records = [
        _record("key_new00001", 3),  # not in the projection yet
        revoked,  # the projection still says active
        _record("key_deleted1", 0, status=KeyStatus.DELETED),  # the projection still has it
    ]
    rows = [_row("key_revoked1", 1, 5), _row("key_deleted1", 0, 7), _row("key_onlyproj", 2, 9)]
    out = listing(records, rows)
    assert [k.key_id for k in out] == ["key_revoked1", "key_onlyproj", "key_new00001"]
    by_id = {k.key_id: k for k in out}
    assert by_id["key_revoked1"].status == "revoked"
    assert by_id["key_revoked1"].revoke_reason == "compromised"
    assert by_id["key_revoked1"].name == "registry name of key_revoked1"
    assert (by_id["key_revoked1"].requests_24h, by_id["key_revoked1"].requests_30d) == (5, 15)
    assert by_id["key_new00001"].requests_7d == 0 and by_id["key_new00001"].last_used_at is None
    assert by_id["key_new00001"].hint == "pk_live_Ab3x…"
    assert by_id["key_onlyproj"] == KeyOut.of(rows[2])
    assert by_id["key_onlyproj"].hint == "pk_live_Zz9y…"


def test_recent_activity_gives_last_used_its_ip_and_the_recent_counts() -> None:
    old_key, fresh_key = _record("key_oldroll1", 0), _record("key_verified", 1)
    rows = [_row("key_oldroll1", 0, 4), _row("key_verified", 1, 0)]  # last_used = AT
    later = AT + timedelta(minutes=14)
    activity = {
        # requests recorded 14 minutes after the rollup's last_used: the newer one wins
        "key_oldroll1": KeyActivity(later, "203.0.113.7", 0, 12, 0, 0),
        # only verifications, older than the rollup's last use: the rollup's time stays
        "key_verified": KeyActivity(AT - timedelta(hours=1), "2001:db8::1", 0, 0, 3, 40),
    }
    out = {k.key_id: k for k in listing([old_key, fresh_key], rows, later, activity)}
    assert (out["key_oldroll1"].last_used_at, out["key_oldroll1"].last_used_ip) == (
        later,
        "203.0.113.7",
    )
    assert (out["key_oldroll1"].requests_5m, out["key_oldroll1"].requests_1h) == (0, 12)
    assert out["key_verified"].last_used_at == AT
    assert (out["key_verified"].verifications_5m, out["key_verified"].verifications_1h) == (3, 40)
    no_activity = listing([old_key], rows, later)
    assert no_activity[0].last_used_ip is None and no_activity[0].requests_1h == 0
