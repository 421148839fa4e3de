"""Buffered rows -> one encoded batch record (columnar JSON, built without models).

A row is the tuple `UsageRecorder.record()` queues, in `ROW_FIELDS` order (the batch
columns after `event_id`), or an outcome row `OutcomeRecorder` queues, in
`OUTCOME_ROW_FIELDS` order. `pack_rows` (a `request.batch`) and `pack_outcomes` (a
`verification.batch`) transpose rows into columns, stamp every event with a UUIDv7
(`schemas.uuid7`) and the envelope with its own ids and `occurred_at`, and encode with
orjson. The bytes decode with `schemas.codec.decode_requests` and validate as a
`RequestBatch` / `OutcomeBatch`; ids are fixed here, so a resent record carries the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.codec import OUTCOME_COLUMNS
from schemas.request_columns import COLUMNS
from schemas.uuid7 import uuid7_block
from schemas.wire_time import format_occurred_at

Row = tuple[int, str, str, str, str, int, float | int, str, int, bool, bool]
ROW_FIELDS: tuple[str, ...] = COLUMNS[1:]
OutcomeRow = tuple[int, str, str | None, str | None, str | None, int, str | None]
"""(occurred_at_ms, outcome, key_id, account_id, client_ip, count, presented_digest)."""
OUTCOME_ROW_FIELDS: tuple[str, ...] = OUTCOME_COLUMNS[1:]
BATCH_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class PackedBatch:
    """One record ready to send: its key (the key id when all rows share it), value, size."""

    key: bytes | None
    value: bytes
    count: int


def _pack(kind: str, fields: tuple[str, ...], rows: list[Any], now_ms: int) -> PackedBatch:
    n = len(rows)
    columns: dict[str, object] = {"event_id": uuid7_block(n, now_ms)}
    columns.update(zip(fields, zip(*rows, strict=True), strict=True))
    envelope_ids = uuid7_block(2, now_ms)
    value = orjson.dumps(
        {
            "type": kind,
            "schema_version": BATCH_SCHEMA_VERSION,
            "event_id": envelope_ids[0],
            "occurred_at": format_occurred_at(now_ms),
            "batch_id": envelope_ids[1],
            "columns": columns,
        }
    )
    keys = columns["key_id"]
    assert isinstance(keys, tuple)
    first_key = keys[0]
    single = first_key is not None and keys.count(first_key) == n
    return PackedBatch(key=first_key.encode() if single else None, value=value, count=n)


def pack_rows(rows: list[Row], now_ms: int) -> PackedBatch:
    """Encode 1..100,000 rows as one `request.batch` record stamped at `now_ms`."""
    return _pack("request.batch", ROW_FIELDS, rows, now_ms)


def pack_outcomes(rows: list[OutcomeRow], now_ms: int) -> PackedBatch:
    """Encode 1..100,000 outcome rows as one `verification.batch` record stamped at `now_ms`."""
    return _pack("verification.batch", OUTCOME_ROW_FIELDS, rows, now_ms)


def split_packed(batch: PackedBatch) -> tuple[PackedBatch, PackedBatch]:
    """Split an encoded batch of 2+ events into two halves, keeping every id as it was."""
    envelope = orjson.loads(batch.value)
    columns: dict[str, list[object]] = envelope["columns"]
    half = batch.count // 2
    halves = []
    for part, (lo, hi) in enumerate(((0, half), (half, batch.count))):
        ids = uuid7_block(1, int(envelope["event_id"][:8] + envelope["event_id"][9:13], 16))
        halves.append(
            PackedBatch(
                key=batch.key,
                value=orjson.dumps(
                    {
                        **envelope,
                        "event_id": envelope["event_id"] if part == 0 else ids[0],
                        "columns": {name: values[lo:hi] for name, values in columns.items()},
                    }
                ),
                count=hi - lo,
            )
        )
    return halves[0], halves[1]
