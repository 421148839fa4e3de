"""`schemas.utc`: exact epoch-millisecond conversions, compared with integer arithmetic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import decode_requests, encode
from schemas.request_bounds import MAX_OCCURRED_MS, MIN_OCCURRED_MS
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import from_epoch_ms, now_ms, to_epoch_ms, to_utc_ms, utc_now

MS_PER_DAY = 86_400_000
instants_ms = st.integers(MIN_OCCURRED_MS, MAX_OCCURRED_MS)
zones = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _truth_ms(value: datetime) -> int:
    """Epoch ms from the calendar fields, by hand (no datetime subtraction, no floats)."""
    u = value.astimezone(UTC)
    days = (u.date() - datetime(1970, 1, 1).date()).days
    return (
        days * MS_PER_DAY
        + ((u.hour * 60 + u.minute) * 60 + u.second) * 1000
        + (u.microsecond // 1000)
    )


@given(instants_ms, st.integers(0, 999), zones)
def test_to_epoch_ms_is_exact_in_any_zone(ms: int, micros: int, zone: timezone) -> None:
    value = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms, microseconds=micros)
    local = value.astimezone(zone)
    assert to_epoch_ms(local) == _truth_ms(local) == ms


@given(instants_ms)
def test_from_epoch_ms_round_trips(ms: int) -> None:
    value = from_epoch_ms(ms)
    assert value.tzinfo is UTC
    assert _truth_ms(value) == ms
    assert to_epoch_ms(value) == ms


def test_an_instant_that_float_arithmetic_gets_wrong() -> None:
    """`int(dt.timestamp() * 1000)` gives ...692 for this instant; the helper gives ...693."""
    value = from_epoch_ms(2_193_528_273_693)  # 2039-07-06T01:24:33.693Z
    assert int(value.timestamp() * 1000) == 2_193_528_273_692
    assert to_epoch_ms(value) == 2_193_528_273_693


def test_to_epoch_ms_rounds_down_before_1970() -> None:
    assert to_epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


@given(instants_ms, st.integers(0, 999), zones)
def test_to_utc_ms_truncates_to_the_millisecond(ms: int, micros: int, zone: timezone) -> None:
    value = (from_epoch_ms(ms) + timedelta(microseconds=micros)).astimezone(zone)
    truncated = to_utc_ms(value)
    assert truncated.utcoffset() == timedelta(0)
    assert truncated == from_epoch_ms(ms)


@pytest.mark.parametrize("convert", [to_epoch_ms, to_utc_ms])
def test_naive_datetimes_are_refused(convert: object) -> None:
    assert callable(convert)
    with pytest.raises(ValueError, match="timezone-aware"):
        convert(datetime(2026, 1, 15, 9, 30))


def test_now_is_utc_and_agrees_with_the_system_clock() -> None:
    before = time.time_ns() // 1_000_000
    ms, now = now_ms(), utc_now()
    after = time.time_ns() // 1_000_000
    assert before <= ms <= after
    assert now.tzinfo is UTC
    assert before <= to_epoch_ms(now) <= after


@given(st.lists(instants_ms, min_size=1, max_size=5))
def test_request_events_keep_their_millisecond(times: list[int]) -> None:
    """A single event's columns and a batch built from events carry the exact instant."""
    events = [
        RequestCompleted(
            occurred_at=from_epoch_ms(ms),
            key_id="key_abc123",
            account_id="acc_7Hq2x",
            method="GET",
            route="/",
            status=200,
            latency_ms=1.0,
            client_ip="203.0.113.7",
        )
        for ms in times
    ]
    assert decode_requests(encode(events[0])).columns["occurred_at_ms"] == times[:1]
    batch = decode_requests(encode(RequestBatch.from_events(events)))
    assert batch.columns["occurred_at_ms"] == times
    assert [to_epoch_ms(e.occurred_at) for e in RequestBatch.from_events(events).events()] == times
