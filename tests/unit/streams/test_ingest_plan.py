"""The pure ingest planner `plan_ingest` and `advance_watermarks`: skipping below the
watermark, dead-letter separation, block sizes, ranges and tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.codec import encode
from schemas.errors import InvalidReason
from schemas.requests import RequestBatch, RequestCompleted
from streams.worker.ingest_plan import SourceRecord, advance_watermarks, plan_ingest
from streams.worker.ports import InsertBlock, OffsetRange

TOPIC = "t.requests"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BIG = 1 << 20


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


def _batch(partition: int, offset: int, events: list[RequestCompleted]) -> SourceRecord:
    value = encode(events[0]) if len(events) == 1 else encode(RequestBatch.from_events(events))
    return SourceRecord(partition, offset, b"k", value)


def _ids(block: InsertBlock) -> list[str]:
    return [str(x) for x in block.columns["event_id"]]


def test_one_block_with_every_event_and_its_source_position() -> None:
    first, second = _events(3), _events(2, first_second=60)
    plan = plan_ingest(TOPIC, [_batch(0, 5, first), _batch(0, 6, second)], {}, 100, BIG)
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
    plan = plan_ingest(TOPIC, records, {0: 2}, 100, BIG)
    assert plan.skipped == 3  # offsets 0, 1, 2 of partition 0
    (block,) = plan.blocks
    assert block.ranges == [OffsetRange(0, 3, 3), OffsetRange(1, 0, 0)]
    assert block.count == 2
    assert block.token == f"{TOPIC}|0:3-3,1:0-0"


def test_invalid_records_are_rejected_and_still_move_the_range() -> None:
    good = _events(2)
    records = [
        SourceRecord(0, 10, None, b"\xffnot json"),
        _batch(0, 11, good),
        SourceRecord(0, 12, b"x", b'{"type":"something.else"}'),
    ]
    plan = plan_ingest(TOPIC, records, {}, 100, BIG)
    assert [(r.record.offset, r.error.reason) for r in plan.rejected] == [
        (10, InvalidReason.NOT_JSON),
        (12, InvalidReason.UNKNOWN_TYPE),
    ]
    (block,) = plan.blocks
    assert block.count == 2
    assert block.ranges == [OffsetRange(0, 10, 12)]


def test_a_take_of_only_invalid_records_gives_an_empty_block_with_ranges() -> None:
    plan = plan_ingest(TOPIC, [SourceRecord(2, 7, None, b"{")], {}, 100, BIG)
    assert len(plan.rejected) == 1
    (block,) = plan.blocks
    assert (block.count, block.ranges) == (0, [OffsetRange(2, 7, 7)])
    assert all(column == [] for column in block.columns.values())


def test_oversized_records_are_rejected_as_too_large() -> None:
    value = encode(RequestBatch.from_events(_events(40)))
    plan = plan_ingest(TOPIC, [SourceRecord(0, 0, None, value)], {}, 100, len(value) - 1)
    assert [r.error.reason for r in plan.rejected] == [InvalidReason.TOO_LARGE]


def test_blocks_are_cut_at_max_events_between_records() -> None:
    sizes = [3, 4, 2, 5, 1]
    records = [_batch(0, i, _events(n)) for i, n in enumerate(sizes)]
    plan = plan_ingest(TOPIC, records, {}, 7, BIG)
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
    plan = plan_ingest(TOPIC, records, {}, 5, BIG)
    assert [b.count for b in plan.blocks] == [2, 9, 1]


def test_the_token_depends_on_the_ranges_only() -> None:
    """The same ranges re-read after a crash give the same token, whatever the events."""
    a = plan_ingest(TOPIC, [_batch(1, 4, _events(1)), _batch(1, 5, _events(1))], {}, 100, BIG)
    b = plan_ingest(TOPIC, [_batch(1, 5, _events(3)), _batch(1, 4, _events(2))], {}, 100, BIG)
    assert a.blocks[0].token == b.blocks[0].token == f"{TOPIC}|1:4-5"


def test_advance_watermarks_keeps_the_highest_end() -> None:
    marks = {0: 9, 1: 2}
    block = InsertBlock(
        TOPIC, [OffsetRange(0, 3, 5), OffsetRange(1, 3, 8), OffsetRange(2, 0, 0)], {}, 0, 0
    )
    advance_watermarks(marks, block)
    assert marks == {0: 9, 1: 8, 2: 0}
