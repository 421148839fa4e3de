"""Sample values for the streams tests: key records and folded chains, one recorded
request, `ingest_batches` rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from streams.worker.keys_agent import AccountState, fold_key_events
from streams.worker.ports import KeyChanges
from tests.samples.keys import Chain

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


def key_record(key_id: str, account_id: str = "acc_sample", **changes: Any) -> KeyRecord:
    """An active live key created at `T0` (seq 2, the first key of its account), with
    `changes` applied."""
    record = KeyRecord(
        account_id=account_id,
        key_id=key_id,
        name=f"name of {key_id}",
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=KeyStatus.ACTIVE,
        secret_hash="sha256:" + "ab" * 32,
        hint="pk_live_Ab3x",
        created_at=T0,
        created_by="key_creator01",
        updated_at=T0,
        seq=2,
    )
    return replace(record, **changes)


def folded(*chains: Chain) -> KeyChanges:
    """What the keys agent writes for the chains' events, folded from an empty projection."""
    events = [e for chain in chains for e in chain.events]
    states = {e.account_id: AccountState(e.account_id) for e in events}
    return fold_key_events(states, events)


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
