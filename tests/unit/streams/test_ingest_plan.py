"""The pure ingest planner `plan_ingest` / `TakePlanner` and `advance_watermarks`:
skipping below the watermark, dead-letter separation (whole records and single rows),
time bounds relative to the record's Kafka timestamp, block sizes, ranges, tokens and
the newest event time of a block."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.codec import encode
from schemas.errors import InvalidReason
from schemas.requests import RequestBatch, RequestCompleted
from streams.worker.ingest_plan import (
    IngestLimits,
    SourceRecord,
    TakePlanner,
    advance_watermarks,
    plan_ingest,
)
from streams.worker.ports import InsertBlock, OffsetRange

TOPIC = "t.requests"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BIG = 1 << 20
FUTURE_MS = 300_000
AGE_MS = 35 * 86_400_000


def _limits(max_events: int = 100, max_bytes: int = BIG) -> IngestLimits:
    return IngestLimits(max_events, max_bytes, max_future_ms=FUTURE_MS, max_age_ms=AGE_MS)


def _events(n: int, first_second: int = 0) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            occurred_at=T0 + timedelta(seconds=first_second + i),
            key_id="key_planner01",
            account_id="acc_planner",
            method="GET",
            route="/v1/plan",
            status=200,
            latency_ms=float(i),
            client_ip="192.0.2.1",
        )
        for i in range(n)
    ]


def _ms(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


RECORD_MS = _ms(T0) + 3_600_000
"""The Kafka timestamp of the sample records: an hour after `T0`."""


def _batch(
    partition: int, offset: int, events: list[RequestCompleted], record_ms: int = RECORD_MS
) -> SourceRecord:
    value = encode(events[0]) if len(events) == 1 else encode(RequestBatch.from_events(events))
    return SourceRecord(partition, offset, b"k", value, record_ms)


def _ids(block: InsertBlock) -> list[str]:
    return [str(x) for x in block.columns["event_id"]]


def test_one_block_with_every_event_and_its_source_position() -> None:
    first, second = _events(3), _events(2, first_second=60)
    plan = plan_ingest(TOPIC, [_batch(0, 5, first), _batch(0, 6, second)], {}, _limits())
    assert plan.rejected == [] and plan.skipped == 0
    (block,) = plan.blocks
    assert block.count == 5
    assert _ids(block) == [str(e.event_id) for e in first + second]
    assert block.columns["src_partition"] == [0] * 5
    assert block.columns["src_offset"] == [5, 5, 5, 6, 6]
    assert block.ranges == [OffsetRange(0, 5, 6)]
    assert block.max_occurred_at_ms == _ms(second[-1].occurred_at)
    assert block.token == f"{TOPIC}|0:5-6"


def test_records_at_or_below_the_watermark_are_skipped() -> None:
    records = [_batch(0, o, _events(1)) for o in range(4)] + [_batch(1, 0, _events(1))]
    plan = plan_ingest(TOPIC, records, {0: 2}, _limits())
    assert plan.skipped == 3  # offsets 0, 1, 2 of partition 0
    (block,) = plan.blocks
    assert block.ranges == [OffsetRange(0, 3, 3), OffsetRange(1, 0, 0)]
    assert block.count == 2
    assert block.token == f"{TOPIC}|0:3-3,1:0-0"


def test_invalid_records_are_rejected_and_still_move_the_range() -> None:
    good = _events(2)
    records = [
        SourceRecord(0, 10, None, b"\xffnot json", RECORD_MS),
        _batch(0, 11, good),
        SourceRecord(0, 12, b"x", b'{"type":"something.else"}', RECORD_MS),
    ]
    plan = plan_ingest(TOPIC, records, {}, _limits())
    assert [(r.record.offset, r.error.reason) for r in plan.rejected] == [
        (10, InvalidReason.NOT_JSON),
        (12, InvalidReason.UNKNOWN_TYPE),
    ]
    (block,) = plan.blocks
    assert block.count == 2
    assert block.ranges == [OffsetRange(0, 10, 12)]


def test_a_take_of_only_invalid_records_gives_an_empty_block_with_ranges() -> None:
    plan = plan_ingest(TOPIC, [SourceRecord(2, 7, None, b"{", RECORD_MS)], {}, _limits())
    assert len(plan.rejected) == 1
    (block,) = plan.blocks
    assert (block.count, block.ranges) == (0, [OffsetRange(2, 7, 7)])
    assert all(column == [] for column in block.columns.values())


def test_oversized_records_are_rejected_as_too_large() -> None:
    value = encode(RequestBatch.from_events(_events(40)))
    record = SourceRecord(0, 0, None, value, RECORD_MS)
    plan = plan_ingest(TOPIC, [record], {}, _limits(max_bytes=len(value) - 1))
    assert [r.error.reason for r in plan.rejected] == [InvalidReason.TOO_LARGE]


def test_blocks_are_cut_at_max_events_between_records() -> None:
    sizes = [3, 4, 2, 5, 1]
    records = [_batch(0, i, _events(n)) for i, n in enumerate(sizes)]
    plan = plan_ingest(TOPIC, records, {}, _limits(7))
    assert [b.count for b in plan.blocks] == [7, 7, 1]
    assert [b.ranges for b in plan.blocks] == [
        [OffsetRange(0, 0, 1)],
        [OffsetRange(0, 2, 3)],
        [OffsetRange(0, 4, 4)],
    ]
    assert len({b.token for b in plan.blocks}) == 3
    assert sum(b.count for b in plan.blocks) == sum(sizes)


def test_a_record_larger_than_max_events_is_a_block_of_its_own() -> None:
    records = [_batch(0, 0, _events(2)), _batch(0, 1, _events(9)), _batch(0, 2, _events(1))]
    plan = plan_ingest(TOPIC, records, {}, _limits(5))
    assert [b.count for b in plan.blocks] == [2, 9, 1]


def test_the_token_depends_on_the_ranges_only() -> None:
    """The same ranges re-read after a crash give the same token, whatever the events."""
    a = plan_ingest(TOPIC, [_batch(1, 4, _events(1)), _batch(1, 5, _events(1))], {}, _limits())
    b = plan_ingest(TOPIC, [_batch(1, 5, _events(3)), _batch(1, 4, _events(2))], {}, _limits())
    assert a.blocks[0].token == b.blocks[0].token == f"{TOPIC}|1:4-5"


def test_advance_watermarks_keeps_the_highest_end() -> None:
    marks = {0: 9, 1: 2}
    block = InsertBlock(
        TOPIC, [OffsetRange(0, 3, 5), OffsetRange(1, 3, 8), OffsetRange(2, 0, 0)], {}, 0, 0
    )
    advance_watermarks(marks, block)
    assert marks == {0: 9, 1: 8, 2: 0}


def _at(*times: datetime) -> list[RequestCompleted]:
    """One event at each of `times` (otherwise like `_events`)."""
    events = _events(len(times))
    return [e.model_copy(update={"occurred_at": t}) for e, t in zip(events, times, strict=True)]


def test_rows_out_of_the_time_bounds_of_their_record_are_rejected_one_by_one() -> None:
    record_at = T0 + timedelta(hours=1)
    times = [
        record_at,
        datetime(2099, 12, 31, tzinfo=UTC),  # far future
        record_at + timedelta(milliseconds=FUTURE_MS),  # the latest allowed
        record_at + timedelta(milliseconds=FUTURE_MS + 1),
        record_at - timedelta(milliseconds=AGE_MS),  # the earliest allowed
        record_at - timedelta(milliseconds=AGE_MS + 1),
    ]
    events = _at(*times)
    plan = plan_ingest(TOPIC, [_batch(3, 40, events, _ms(record_at))], {}, _limits())
    got = [(r.record.offset, r.error.reason, r.row and r.row.index) for r in plan.rejected]
    assert got == [
        (40, InvalidReason.FUTURE_TIMESTAMP, 1),
        (40, InvalidReason.FUTURE_TIMESTAMP, 3),
        (40, InvalidReason.STALE_TIMESTAMP, 5),
    ]
    assert [r.error.message.split(":")[0] for r in plan.rejected] == [
        "events[1].occurred_at_ms",
        "events[3].occurred_at_ms",
        "events[5].occurred_at_ms",
    ]
    (block,) = plan.blocks
    kept = [events[i] for i in (0, 2, 4)]
    assert _ids(block) == [str(e.event_id) for e in kept]
    assert block.columns["occurred_at_ms"] == [_ms(e.occurred_at) for e in kept]
    assert block.columns["src_offset"] == [40, 40, 40]
    assert block.ranges == [OffsetRange(3, 40, 40)]


def test_a_rejected_row_is_a_single_event_of_the_batch_values() -> None:
    """The dead-letter value of a row decodes as the single event the producer meant."""
    event = _at(datetime(2099, 12, 31, 23, 59, 59, 123_000, tzinfo=UTC))[0]
    events = [*_events(2), event]
    plan = plan_ingest(TOPIC, [_batch(0, 1, events)], {}, _limits())
    (rejected,) = plan.rejected
    assert rejected.row is not None
    row = rejected.row.row
    assert row["type"] == "request.completed"
    assert row["occurred_at"] == "2099-12-31T23:59:59.123Z"
    assert RequestCompleted.model_validate(row) == event


def test_a_single_event_out_of_bounds_rejects_its_whole_record() -> None:
    far = _at(datetime(2099, 12, 31, tzinfo=UTC))
    stale = _at(T0 - timedelta(days=40))
    records = [_batch(0, 1, far), _batch(0, 2, _events(1)), _batch(0, 3, stale)]
    plan = plan_ingest(TOPIC, records, {}, _limits())
    assert [(r.record.offset, r.error.reason, r.row) for r in plan.rejected] == [
        (1, InvalidReason.FUTURE_TIMESTAMP, None),
        (3, InvalidReason.STALE_TIMESTAMP, None),
    ]
    assert "KEYPULSE_WORKER_MAX_FUTURE_S" in plan.rejected[0].error.message
    (block,) = plan.blocks
    assert block.count == 1 and block.ranges == [OffsetRange(0, 1, 3)]


def test_a_record_without_a_timestamp_is_held_to_the_static_bounds_only() -> None:
    events = _at(datetime(2099, 12, 31, tzinfo=UTC), T0)
    record = SourceRecord(0, 0, None, encode(RequestBatch.from_events(events)), None)
    plan = plan_ingest(TOPIC, [record], {}, _limits())
    assert plan.rejected == []
    (block,) = plan.blocks
    assert block.count == 2
    assert block.max_occurred_at_ms == 0  # no record time to cap it at: freshness ignores it


def test_the_newest_event_time_of_a_block_is_capped_at_its_newest_record_time() -> None:
    ahead = timedelta(milliseconds=FUTURE_MS // 2)  # within the allowed skew
    first = _batch(0, 0, _at(T0, T0 + ahead), _ms(T0))
    second = _batch(1, 0, _at(T0 - timedelta(minutes=1)), _ms(T0) + 1_000)
    plan = plan_ingest(TOPIC, [first, second], {}, _limits())
    (block,) = plan.blocks
    assert block.count == 3
    assert block.max_occurred_at_ms == _ms(T0) + 1_000
    behind = plan_ingest(
        TOPIC, [_batch(0, 0, _at(T0, T0 + ahead), _ms(T0) + 3_600_000)], {}, _limits()
    )
    assert behind.blocks[0].max_occurred_at_ms == _ms(T0 + ahead)


def test_the_same_records_are_planned_the_same_whenever_they_are_read() -> None:
    """No clock and no random id: a replay of the same records gives the same blocks."""
    records = [
        _batch(0, 0, _at(T0, datetime(2099, 1, 1, tzinfo=UTC), T0 - timedelta(days=90))),
        _batch(0, 1, _events(4)),
    ]
    first = plan_ingest(TOPIC, records, {}, _limits())
    again = plan_ingest(TOPIC, list(records), {}, _limits())
    assert [b.columns for b in first.blocks] == [b.columns for b in again.blocks]
    assert [(r.error.reason, r.row) for r in first.rejected] == [
        (r.error.reason, r.row) for r in again.rejected
    ]


def test_the_take_planner_yields_each_block_with_the_dead_letters_of_its_records() -> None:
    records = [
        _batch(0, 0, _events(3)),
        SourceRecord(0, 1, None, b"{", RECORD_MS),
        _batch(0, 2, _at(T0, datetime(2099, 1, 1, tzinfo=UTC), T0)),  # 2 valid: next block
        _batch(0, 3, _events(1)),
        _batch(0, 4, _events(1)),  # at the watermark below: skipped
    ]
    planner = TakePlanner(TOPIC, _limits(4), {1: 9})
    steps = planner.blocks(records[:4])
    first = next(steps)
    assert first.block.ranges == [OffsetRange(0, 0, 1)]
    assert [r.error.reason for r in first.rejected] == [InvalidReason.NOT_JSON]
    second = next(steps)
    assert second.block.ranges == [OffsetRange(0, 2, 3)] and second.block.count == 3
    assert [(r.error.reason, r.row and r.row.index) for r in second.rejected] == [
        (InvalidReason.FUTURE_TIMESTAMP, 1)
    ]
    assert next(steps, None) is None
    skipping = TakePlanner(TOPIC, _limits(4), {0: 3})
    assert [p.block.ranges for p in skipping.blocks(records)] == [[OffsetRange(0, 4, 4)]]
    assert skipping.skipped == 4
