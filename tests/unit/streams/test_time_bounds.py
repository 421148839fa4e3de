"""`streams.worker.time_bounds.check_time_bounds`: rows are judged against their Kafka
record's timestamp, and a rejected row keeps its index in the batch also when the
decoder had already rejected rows before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.codec import DecodedRequests, RejectedRow, decode_requests, encode
from schemas.errors import InvalidMessage, InvalidReason
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.time_bounds import TimeBounds, check_time_bounds

BOUNDS = TimeBounds(max_future_ms=300_000, max_age_ms=86_400_000)
RECORD_AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
RECORD_MS = to_epoch_ms(RECORD_AT)


def _event(at: datetime) -> RequestCompleted:
    return RequestCompleted(
        occurred_at=at,
        key_id="key_bounds001",
        account_id="acc_bounds",
        method="GET",
        route="/v1/b",
        status=200,
        latency_ms=3.0,
        client_ip="192.0.2.4",
    )


def test_rows_keep_their_batch_index_past_the_decoders_rejections() -> None:
    """Batch rows 0..5; the decoder rejected 1 and 3; 4 is in the future."""
    ok, future = RECORD_AT - timedelta(minutes=1), RECORD_AT + timedelta(hours=1)
    valid = [_event(ok), _event(ok), _event(future), _event(ok)]  # batch rows 0, 2, 4, 5
    value = encode(RequestBatch.from_events(valid))
    decoded = decode_requests(value)
    earlier = tuple(
        RejectedRow(i, InvalidReason.SCHEMA_VIOLATION, f"events[{i}].status: bad", {"i": i})
        for i in (1, 3)
    )
    with_gaps = DecodedRequests(decoded.columns, decoded.count, earlier)
    out = check_time_bounds(with_gaps, RECORD_MS, BOUNDS)
    assert [(r.index, r.reason) for r in out.rejected] == [
        (1, InvalidReason.SCHEMA_VIOLATION),
        (3, InvalidReason.SCHEMA_VIOLATION),
        (4, InvalidReason.FUTURE_TIMESTAMP),
    ]
    assert out.rejected[2].message.startswith("events[4].occurred_at_ms: ")
    assert out.count == 3
    assert out.columns["event_id"] == [str(valid[i].event_id) for i in (0, 1, 3)]


def test_the_bounds_follow_the_record_timestamp_not_the_clock() -> None:
    old = _event(datetime(2001, 1, 1, tzinfo=UTC))
    decoded = decode_requests(encode(old))
    then = to_epoch_ms(datetime(2001, 1, 1, 0, 1, tzinfo=UTC))
    assert check_time_bounds(decoded, then, BOUNDS) is decoded
    with pytest.raises(InvalidMessage) as caught:
        check_time_bounds(decoded, RECORD_MS, BOUNDS)
    assert caught.value.reason is InvalidReason.STALE_TIMESTAMP
    assert caught.value.message.startswith("occurred_at: 2001-01-01T00:00:00.000Z is more than 1 ")


def test_a_batch_of_one_row_is_judged_per_row() -> None:
    value = encode(RequestBatch.from_events([_event(RECORD_AT + timedelta(days=3))]))
    out = check_time_bounds(decode_requests(value), RECORD_MS, BOUNDS)
    assert out.count == 0 and all(column == [] for column in out.columns.values())
    (row,) = out.rejected
    assert (row.index, row.reason) == (0, InvalidReason.FUTURE_TIMESTAMP)
    assert orjson.loads(orjson.dumps(row.row))["type"] == "request.completed"
