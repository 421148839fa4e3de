"""Pure ingest planning: turn consumed records into insertable column blocks.

Given records (partition, offset, key, value) and the per-partition watermark (the
highest offset ClickHouse already holds), decode every record past the watermark,
separate the invalid ones (for the dead-letter topic) and group the valid rows into
blocks of at most `max_events`. Each block carries its offset ranges and a
deduplication token derived from them, so re-inserting the same ranges after a crash
is a no-op in ClickHouse, whatever the batch boundaries were before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.codec import decode_requests
from schemas.errors import InvalidMessage
from schemas.request_columns import COLUMNS, Columns
from streams.worker.ports import InsertBlock, OffsetRange


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Rejected:
    record: SourceRecord
    error: InvalidMessage


@dataclass
class IngestPlan:
    blocks: list[InsertBlock] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0  # records at or below the watermark (already in ClickHouse)


def _empty_columns() -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    cols["src_partition"] = []
    cols["src_offset"] = []
    return cols


class _BlockBuilder:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.reset()

    def reset(self) -> None:
        self.columns = _empty_columns()
        self.count = 0
        self.ranges: dict[int, list[int]] = {}
        self.max_ms = 0

    def touch(self, record: SourceRecord) -> None:
        span = self.ranges.get(record.partition)
        if span is None:
            self.ranges[record.partition] = [record.offset, record.offset]
        else:
            span[0] = min(span[0], record.offset)
            span[1] = max(span[1], record.offset)

    def add(self, record: SourceRecord, columns: Columns, count: int) -> None:
        self.touch(record)
        for name in COLUMNS:
            self.columns[name].extend(columns[name])
        self.columns["src_partition"].extend([record.partition] * count)
        self.columns["src_offset"].extend([record.offset] * count)
        self.count += count
        self.max_ms = max(self.max_ms, max(columns["occurred_at_ms"]))

    def build(self) -> InsertBlock:
        ranges = [OffsetRange(p, s, e) for p, (s, e) in sorted(self.ranges.items())]
        return InsertBlock(self.topic, ranges, self.columns, self.count, self.max_ms)


def plan_ingest(
    topic: str,
    records: list[SourceRecord],
    watermarks: dict[int, int],
    max_events: int,
    max_message_bytes: int,
) -> IngestPlan:
    """Decode `records` past `watermarks` into blocks of at most `max_events` rows.

    A block may exceed `max_events` only when a single record holds more events.
    Ranges cover every record consumed into the block, rejected ones included, so
    the watermark moves past them too.
    """
    plan = IngestPlan()
    builder = _BlockBuilder(topic)
    for record in records:
        if record.offset <= watermarks.get(record.partition, -1):
            plan.skipped += 1
            continue
        try:
            decoded = decode_requests(record.value, max_message_bytes)
        except InvalidMessage as exc:
            plan.rejected.append(Rejected(record, exc))
            builder.touch(record)
            continue
        if builder.count and builder.count + decoded.count > max_events:
            plan.blocks.append(builder.build())
            builder.reset()
        builder.add(record, decoded.columns, decoded.count)
    if builder.ranges:
        plan.blocks.append(builder.build())
    return plan


def advance_watermarks(watermarks: dict[int, int], block: InsertBlock) -> None:
    for r in block.ranges:
        watermarks[r.partition] = max(watermarks.get(r.partition, -1), r.end)
