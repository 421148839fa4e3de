"""How the API shows a key: its metadata from the key registry (the follower's fold,
exact and immediate in this process) and its usage from ClickHouse (the projection).

A key's metadata (name, status, hint, who created it, revocation) is taken from the
follower whenever it knows the key, so a key created, renamed or revoked a moment ago
reads back as it now is, before the `keys` projection has caught up. The numbers (last
use, requests over 24h/7d/30d) always come from ClickHouse, where the request events
are. A key only the projection knows (the follower not ready yet, or rows written to
ClickHouse by other means) is shown as the projection has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from projections.queries import KeyRow
from schemas.key_ledger import KeyRecord, KeyStatus

ELLIPSIS = "…"


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
    status: str = Field(description="active or revoked")
    hint: str | None = Field(
        description="The prefix and first 4 characters of the secret, e.g. pk_live_Ab3x…"
    )
    created_at: datetime
    created_by: str | None = Field(description="The key id (or operator) that created it")
    revoked_at: datetime | None
    revoke_reason: str | None


def _record_fields(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.key_id,
        "key_id": record.key_id,
        "name": record.name,
        "type": record.key_type.value,
        "access": record.access.value,
        "status": record.status.value,
        "hint": display_hint(record.hint),
        "created_at": record.created_at,
        "created_by": record.created_by,
        "revoked_at": record.revoked_at,
        "revoke_reason": record.revoke_reason.value if record.revoke_reason else None,
    }


def meta_of(record: KeyRecord) -> KeyMeta:
    return KeyMeta(**_record_fields(record))


class KeyOut(KeyMeta):
    """A key with its usage."""

    last_used_at: datetime | None
    requests_24h: int
    requests_7d: int
    requests_30d: int

    @classmethod
    def of(cls, row: KeyRow) -> KeyOut:
        """A key as the projection has it (metadata and usage)."""
        return cls(
            id=row.key_id,
            key_id=row.key_id,
            name=row.name,
            type=row.key_type,
            access=row.access,
            status=row.status,
            hint=display_hint(row.hint) if row.hint else None,
            created_at=row.created_at,
            created_by=row.created_by or None,
            revoked_at=row.revoked_at,
            revoke_reason=row.revoke_reason,
            last_used_at=row.last_used,
            requests_24h=row.requests_24h,
            requests_7d=row.requests_7d,
            requests_30d=row.requests_30d,
        )

    @classmethod
    def of_record(cls, record: KeyRecord, usage: KeyRow | None) -> KeyOut:
        """The registry's metadata with the projection's usage (none yet: zeros)."""
        return cls(
            **_record_fields(record),
            last_used_at=usage.last_used if usage else None,
            requests_24h=usage.requests_24h if usage else 0,
            requests_7d=usage.requests_7d if usage else 0,
            requests_30d=usage.requests_30d if usage else 0,
        )


def listing(records: Iterable[KeyRecord], rows: Iterable[KeyRow]) -> list[KeyOut]:
    """The account's keys: every key the registry knows and has not deleted (with the
    projection's usage), then those only the projection knows; oldest first."""
    usage = {row.key_id: row for row in rows}
    known: set[str] = set()
    out: list[KeyOut] = []
    for record in records:
        known.add(record.key_id)
        if record.status is not KeyStatus.DELETED:
            out.append(KeyOut.of_record(record, usage.get(record.key_id)))
    out += [KeyOut.of(row) for key_id, row in usage.items() if key_id not in known]
    return sorted(out, key=lambda k: (k.created_at, k.key_id))
