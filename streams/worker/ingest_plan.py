"""Pure ingest planning: turn consumed records into insertable column blocks.

Given records (partition, offset, key, value, Kafka timestamp) and the per-partition
watermark (the highest offset ClickHouse already holds), decode every record past the
watermark, check its events' times against the record's timestamp
(`streams.worker.time_bounds`), separate what is invalid (for the dead-letter topic: a
whole record, or single rows of a batch) and group the valid rows into blocks of at most
`max_events`. Each block carries its offset ranges, a deduplication token derived from
them, and the dead letters of the records it covers, so re-inserting the same ranges
after a crash is a no-op in ClickHouse, whatever the batch boundaries were before.

Verification outcome records (`verification.batch`, `verification.outcome`) on the same
topic are planned alongside: their valid rows go into the block's `PlannedBlock.outcomes`
(with their source positions, under the same ranges and token), their rows out of the
time bounds and invalid rows are dead letters like a batch's.

`TakePlanner.blocks` yields the blocks one at a time (the worker writes one while it
decodes the next); `plan_ingest` collects them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import OUTCOME_COLUMNS, DecodedRequests, RejectedRow, decode_requests
from schemas.errors import InvalidMessage
from schemas.request_columns import COLUMNS, Columns
from streams.worker.ports import InsertBlock, OffsetRange
from streams.worker.time_bounds import TimeBounds, check_time_bounds


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None
    """The Kafka record's timestamp, Unix epoch milliseconds (None: the record has none)."""


@dataclass(frozen=True)
class IngestLimits:
    """What one worker accepts: block size, record size and the time bounds."""

    max_events: int
    """Rows per block; a single record with more rows is a block of its own."""
    max_message_bytes: int
    """Larger record values are dead-lettered (`too_large`)."""
    max_future_ms: int
    """An event later than its record's timestamp by more is `future_timestamp`."""
    max_age_ms: int
    """An event earlier than its record's timestamp by more is `stale_timestamp`."""

    @property
    def time_bounds(self) -> TimeBounds:
        return TimeBounds(self.max_future_ms, self.max_age_ms)


@dataclass(frozen=True)
class Rejected:
    """A dead letter: a whole record (`row` None), or one row of a batch record."""

    record: SourceRecord
    error: InvalidMessage
    row: RejectedRow | None = None


@dataclass
class PlannedBlock:
    """A block and the dead letters of the records within its ranges, with the
    verification outcome rows of those records (`OUTCOME_COLUMNS` plus `src_partition`
    and `src_offset`; written under the block's token after its request rows)."""

    block: InsertBlock
    rejected: list[Rejected]
    outcomes: Columns = field(default_factory=dict)
    outcome_count: int = 0


@dataclass
class IngestPlan:
    blocks: list[InsertBlock] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0  # records at or below the watermark (already in ClickHouse)
    planned: list[PlannedBlock] = field(default_factory=list)
    """Every block with its dead letters and outcome rows, in order."""


def _empty_columns(names: tuple[str, ...] = COLUMNS) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name in names}
    cols["src_partition"] = []
    cols["src_offset"] = []
    return cols


def outcome_time_bounds(
    decoded: DecodedRequests, record: SourceRecord, bounds: TimeBounds
) -> tuple[Columns, int, list[Rejected]]:
    """The outcome rows of `decoded` within the time bounds of `record`'s timestamp, and
    the dead letters of the others (`stale_timestamp`, `future_timestamp`: the rules of
    `streams.worker.time_bounds`, checked through a one-row request view of each time)."""
    cols, count = decoded.outcomes, decoded.outcome_count
    if record.timestamp_ms is None or not count:
        return cols, count, []
    earliest = record.timestamp_ms - bounds.max_age_ms
    latest = record.timestamp_ms + bounds.max_future_ms
    times = cols["occurred_at_ms"]
    if earliest <= min(times) and max(times) <= latest:
        return cols, count, []
    keep: list[int] = []
    rejected: list[Rejected] = []
    for row, ms in enumerate(times):
        if earliest <= ms <= latest:
            keep.append(row)
            continue
        single = {name: [ms] if name == "occurred_at_ms" else [] for name in COLUMNS}
        view = DecodedRequests(columns=single, count=1, single=True)
        try:
            check_time_bounds(view, record.timestamp_ms, bounds)
            keep.append(row)
        except InvalidMessage as exc:
            event = {name: cols[name][row] for name in OUTCOME_COLUMNS}
            event["type"] = "verification.outcome"
            message = f"outcomes[{row}].{exc.message}"[:500]
            rejected.append(Rejected(record, exc, RejectedRow(row, exc.reason, message, event)))
    kept = {name: [values[r] for r in keep] for name, values in cols.items()}
    return kept, len(keep), rejected


class _BlockBuilder:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.reset()

    def reset(self) -> None:
        self.columns = _empty_columns()
        self.outcomes = _empty_columns(OUTCOME_COLUMNS)
        self.outcome_count = 0
        self.count = 0
        self.ranges: dict[int, list[int]] = {}
        self.max_ms = 0
        self.max_record_ms: int | None = None
        self.rejected: list[Rejected] = []

    def touch(self, record: SourceRecord) -> None:
        span = self.ranges.get(record.partition)
        if span is None:
            self.ranges[record.partition] = [record.offset, record.offset]
        else:
            span[0] = min(span[0], record.offset)
            span[1] = max(span[1], record.offset)

    def reject(self, record: SourceRecord, error: InvalidMessage) -> None:
        self.touch(record)
        self.rejected.append(Rejected(record, error))

    def add(self, record: SourceRecord, columns: Columns, count: int) -> None:
        self.touch(record)
        if not count:
            return
        for name in COLUMNS:
            self.columns[name].extend(columns[name])
        self.columns["src_partition"].extend([record.partition] * count)
        self.columns["src_offset"].extend([record.offset] * count)
        self.count += count
        self.max_ms = max(self.max_ms, max(columns["occurred_at_ms"]))
        if record.timestamp_ms is not None:
            self.max_record_ms = max(self.max_record_ms or 0, record.timestamp_ms)

    def add_outcomes(self, record: SourceRecord, columns: Columns, count: int) -> None:
        if not count:
            return
        for name in OUTCOME_COLUMNS:
            self.outcomes[name].extend(columns[name])
        self.outcomes["src_partition"].extend([record.partition] * count)
        self.outcomes["src_offset"].extend([record.offset] * count)
        self.outcome_count += count

    def newest_event_ms(self) -> int:
        """The newest event time, capped at the newest record timestamp of the block, so
        the ingest log never runs ahead of the broker (0: no timestamped rows)."""
        if self.max_record_ms is None:
            return 0
        return min(self.max_ms, self.max_record_ms)

    def build(self) -> PlannedBlock:
        ranges = [OffsetRange(p, s, e) for p, (s, e) in sorted(self.ranges.items())]
        block = InsertBlock(self.topic, ranges, self.columns, self.count, self.newest_event_ms())
        return PlannedBlock(block, self.rejected, self.outcomes, self.outcome_count)


def _row_dead_letters(record: SourceRecord, rows: tuple[RejectedRow, ...]) -> list[Rejected]:
    return [Rejected(record, InvalidMessage(r.reason, r.message), r) for r in rows]


@dataclass
class TakePlanner:
    """Plans one take of records past `watermarks` (a copy the planner does not change)."""

    topic: str
    limits: IngestLimits
    watermarks: dict[int, int]
    skipped: int = 0
    """Records at or below the watermark seen so far (already in ClickHouse)."""

    def blocks(self, records: Iterable[SourceRecord]) -> Iterator[PlannedBlock]:
        """Blocks of at most `max_events` rows, in record order. A block may exceed
        `max_events` only when a single record holds more events. Ranges cover every
        record consumed into the block, rejected ones included, so the watermark moves
        past them too."""
        limits = self.limits
        builder = _BlockBuilder(self.topic)
        for record in records:
            if record.offset <= self.watermarks.get(record.partition, -1):
                self.skipped += 1
                continue
            try:
                decoded = check_time_bounds(
                    decode_requests(record.value, limits.max_message_bytes),
                    record.timestamp_ms,
                    limits.time_bounds,
                )
            except InvalidMessage as exc:
                builder.reject(record, exc)
                continue
            rows = builder.count + builder.outcome_count
            if rows and rows + decoded.count + decoded.outcome_count > limits.max_events:
                yield builder.build()
                builder.reset()
            builder.rejected.extend(_row_dead_letters(record, decoded.rejected))
            builder.add(record, decoded.columns, decoded.count)
            if decoded.outcome_count:
                outcomes, count, late = outcome_time_bounds(decoded, record, limits.time_bounds)
                builder.rejected.extend(late)
                builder.add_outcomes(record, outcomes, count)
        if builder.ranges:
            yield builder.build()


def plan_ingest(
    topic: str, records: list[SourceRecord], watermarks: dict[int, int], limits: IngestLimits
) -> IngestPlan:
    """Every block of `records` past `watermarks` (see `TakePlanner.blocks`)."""
    planner = TakePlanner(topic, limits, watermarks)
    plan = IngestPlan()
    for planned in planner.blocks(records):
        plan.blocks.append(planned.block)
        plan.rejected.extend(planned.rejected)
        plan.planned.append(planned)
    plan.skipped = planner.skipped
    return plan


def advance_watermarks(watermarks: dict[int, int], block: InsertBlock) -> None:
    for r in block.ranges:
        watermarks[r.partition] = max(watermarks.get(r.partition, -1), r.end)
