"""How the API shows a key: its metadata from the key registry (the follower's fold,
exact and immediate in this process) and its usage from ClickHouse (the projection).

A key's status is `expired` once the time passes its `expires_at` (judged at the read's
`now`; expiry is never an event), with `expiring_soon` within 7 days of it.

A key's metadata (name, status, hint, who created it, revocation) is taken from the
follower whenever it knows the key, so a key created, renamed or revoked a moment ago
reads back as it now is, before the `keys` projection has caught up. The numbers (last
use, requests over 24h/7d/30d) always come from ClickHouse, where the request events
are. A key only the projection knows (the follower not ready yet, or rows written to
ClickHouse by other means) is shown as the projection has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from projections.key_activity import KeyActivity
from projections.queries import KeyRow
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.utc import utc_now

ELLIPSIS = "…"
EXPIRING_SOON = timedelta(days=7)
"""A key that expires within this is flagged `expiring_soon`."""


def display_hint(hint: str) -> str:
    """`pk_live_Ab3x` as shown: `pk_live_Ab3x…`."""
    return hint + ELLIPSIS


class KeyMeta(BaseModel):
    """A key as the registry knows it (never its secret)."""

    id: str = Field(description="The key id (the same as `key_id`)")
    key_id: str
    name: str
    type: str = Field(description="live or test")
    access: str = Field(description="full (product API), read_only or admin")
    status: str = Field(
        description="active, revoked, or expired (an active key past its expires_at)"
    )
    hint: str | None = Field(
        description="The prefix and first 4 characters of the secret, e.g. pk_live_Ab3x…"
    )
    created_at: datetime
    created_by: str | None = Field(description="The key id (or operator) that created it")
    revoked_at: datetime | None
    revoke_reason: str | None
    expires_at: datetime | None = Field(default=None, description="When it stops working")
    expiring_soon: bool = Field(
        default=False, description="Active and expiring within 7 days (roll or replace it)"
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list, description="Networks it may be used from (empty: anywhere)"
    )
    replaces: str | None = Field(default=None, description="The key it was rolled from")
    replaced_by: str | None = Field(default=None, description="The key rolled from it")


def _expiry_fields(status: str, expires_at: datetime | None, now: datetime) -> dict[str, Any]:
    soon = status == "active" and expires_at is not None and expires_at - now <= EXPIRING_SOON
    return {"status": status, "expires_at": expires_at, "expiring_soon": soon}


def _record_fields(record: KeyRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": record.key_id,
        "key_id": record.key_id,
        "name": record.name,
        "type": record.key_type.value,
        "access": record.access.value,
        **_expiry_fields(record.status_at(now).value, record.expires_at, now),
        "allowed_cidrs": list(record.allowed_cidrs),
        "replaces": record.replaces,
        "replaced_by": record.replaced_by,
        "hint": display_hint(record.hint),
        "created_at": record.created_at,
        "created_by": record.created_by,
        "revoked_at": record.revoked_at,
        "revoke_reason": record.revoke_reason.value if record.revoke_reason else None,
    }


def meta_of(record: KeyRecord, now: datetime | None = None) -> KeyMeta:
    return KeyMeta(**_record_fields(record, now or utc_now()))


class KeyOut(KeyMeta):
    """A key with its usage."""

    last_used_at: datetime | None = Field(
        description="The newest use: a request recorded or a valid verification"
    )
    last_used_ip: str | None = Field(default=None, description="The client IP of that use")
    requests_24h: int
    requests_7d: int
    requests_30d: int
    requests_5m: int = Field(default=0, description="Requests recorded in the last 5 minutes")
    requests_1h: int = Field(default=0, description="Requests recorded in the last hour")
    verifications_5m: int = Field(
        default=0, description="Valid verifications in the last 5 minutes"
    )
    verifications_1h: int = Field(default=0, description="Valid verifications in the last hour")

    @classmethod
    def of(
        cls, row: KeyRow, now: datetime | None = None, activity: KeyActivity | None = None
    ) -> KeyOut:
        """A key as the projection has it (metadata and usage; status at `now`)."""
        when = now or utc_now()
        expired = row.status == "active" and row.expires_at is not None and when >= row.expires_at
        return cls(
            id=row.key_id,
            key_id=row.key_id,
            name=row.name,
            type=row.key_type,
            access=row.access,
            **_expiry_fields("expired" if expired else row.status, row.expires_at, when),
            allowed_cidrs=list(row.allowed_cidrs),
            replaces=row.replaces,
            replaced_by=row.replaced_by,
            hint=display_hint(row.hint) if row.hint else None,
            created_at=row.created_at,
            created_by=row.created_by or None,
            revoked_at=row.revoked_at,
            revoke_reason=row.revoke_reason,
            requests_24h=row.requests_24h,
            requests_7d=row.requests_7d,
            requests_30d=row.requests_30d,
            **_activity_fields(row.last_used, activity),
        )

    @classmethod
    def of_record(
        cls,
        record: KeyRecord,
        usage: KeyRow | None,
        now: datetime | None = None,
        activity: KeyActivity | None = None,
    ) -> KeyOut:
        """The registry's metadata with the projection's usage (none yet: zeros)."""
        return cls(
            **_record_fields(record, now or utc_now()),
            requests_24h=usage.requests_24h if usage else 0,
            requests_7d=usage.requests_7d if usage else 0,
            requests_30d=usage.requests_30d if usage else 0,
            **_activity_fields(usage.last_used if usage else None, activity),
        )


def _activity_fields(last_used: datetime | None, activity: KeyActivity | None) -> dict[str, Any]:
    """Last used (the newer of the usage rollup's and `key_activity`'s), its IP and the
    recent counts."""
    if activity is None:
        return {"last_used_at": last_used}
    newest = activity.last_used_at
    if last_used is not None and (newest is None or last_used > newest):
        newest = last_used
    return {
        "last_used_at": newest,
        "last_used_ip": activity.last_used_ip,
        "requests_5m": activity.requests_5m,
        "requests_1h": activity.requests_1h,
        "verifications_5m": activity.verifications_5m,
        "verifications_1h": activity.verifications_1h,
    }


def listing(
    records: Iterable[KeyRecord],
    rows: Iterable[KeyRow],
    now: datetime | None = None,
    activity: Mapping[str, KeyActivity] | None = None,
) -> list[KeyOut]:
    """The account's keys: every key the registry knows and has not deleted (with the
    projection's usage and `activity`), then those only the projection knows; oldest
    first."""
    when = now or utc_now()
    recent = activity or {}
    usage = {row.key_id: row for row in rows}
    known: set[str] = set()
    out: list[KeyOut] = []
    for record in records:
        known.add(record.key_id)
        if record.status is not KeyStatus.DELETED:
            key_id = record.key_id
            out.append(KeyOut.of_record(record, usage.get(key_id), when, recent.get(key_id)))
    out += [
        KeyOut.of(row, when, recent.get(key_id))
        for key_id, row in usage.items()
        if key_id not in known
    ]
    return sorted(out, key=lambda k: (k.created_at, k.key_id))
