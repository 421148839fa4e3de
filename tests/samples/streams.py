"""Sample values for the streams tests: one registry state builder, one recorded request."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from streams.worker.ports import KeyState, KeyStatus

T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

REQUEST: dict[str, Any] = {
    "key_id": "key_abc123",
    "account_id": "acc_7Hq2x",
    "method": "GET",
    "route": "/v1/render",
    "status": 200,
    "latency_ms": 12.5,
    "client_ip": "203.0.113.7",
}
"""The keyword arguments of one valid `UsageRecorder.record()` call."""


def key_state(key_id: str, account_id: str = "acc_sample", **changes: Any) -> KeyState:
    """An active live key created at `T0` (version 1), with `changes` applied."""
    state = KeyState(
        account_id=account_id,
        key_id=key_id,
        name=f"name of {key_id}",
        key_type="live",
        access="full",
        status=KeyStatus.ACTIVE,
        plan="pro",
        created_at=T0,
        revoked_at=None,
        deleted_at=None,
        updated_at=T0,
        version=1,
    )
    return replace(state, **changes)


LOG_COLUMNS = (
    "topic",
    "seq",
    "token",
    "partitions",
    "start_offsets",
    "end_offsets",
    "events",
    "max_occurred_at",
)
"""The columns of an `ingest_batches` row that tests write by hand (as an older worker,
or a seeded backend, would have)."""


def log_row(
    topic: str,
    seq: int,
    ranges: dict[int, tuple[int, int]],
    events: int,
    max_occurred_at: datetime | int,
    token: str | None = None,
) -> list[Any]:
    """One `ingest_batches` row in `LOG_COLUMNS` order; `ranges` maps partition to
    (start, end) offsets."""
    parts = sorted(ranges)
    return [
        topic,
        seq,
        token or f"{topic}|{seq}",
        parts,
        [ranges[p][0] for p in parts],
        [ranges[p][1] for p in parts],
        events,
        max_occurred_at,
    ]
