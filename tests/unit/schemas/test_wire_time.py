"""`occurred_at` text: the pattern accepts only instants in range, and nearly all of them.

Truth is computed apart from `schemas.wire_time`: `datetime.fromisoformat` reads the text
(it accepts more than RFC 3339, so it judges only the instant), and the range is checked
on the exact instant. Texts are built from parts, valid and invalid alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.request_bounds import MAX_OCCURRED_MS, MIN_OCCURRED_MS
from schemas.utc import to_epoch_ms
from schemas.wire_time import format_occurred_at, occurred_at_ms, parse_occurred_at

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EDGE_DAYS = {"1999-12-31", "2000-01-01", "2099-12-31", "2100-01-01"}


def _two(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda v: f"{v:02d}")


@st.composite
def texts(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from([1999, 2000, 2001, 2024, 2025, 2098, 2099, 2100, 2101]))
    month = draw(_two(0, 13) | st.sampled_from(["01", "02", "12"]))
    day = draw(_two(0, 32) | st.sampled_from(["01", "28", "29", "30", "31"]))
    hour = draw(_two(0, 24) | st.sampled_from(["00", "23"]))
    minute, second = draw(_two(0, 60)), draw(_two(0, 60) | st.sampled_from(["00", "59"]))
    fraction = draw(st.sampled_from(["", ".0", ".000", ".001", ".5", ".123456789", ".0000000001"]))
    zone = draw(
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "", "+24:00"])
        | st.builds(
            "{}{}:{}".format,
            st.sampled_from("+-"),
            _two(0, 23) | st.just("01"),
            st.sampled_from(["00", "30", "59"]),
        )
    )
    t = draw(st.sampled_from(["T", "t", " "]))
    return f"{year:04d}-{month}-{day}{t}{hour}:{minute}:{second}{fraction}{zone}"


def _instant(text: str) -> datetime | None:
    """The aware instant `fromisoformat` reads (None: not a zoned date-time)."""
    try:
        value = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError:
        return None
    return value if value.utcoffset() is not None else None


def _exact_ms(instant: datetime) -> float:
    return (instant - EPOCH) / timedelta(milliseconds=1)


@settings(max_examples=800, deadline=None)
@given(texts())
def test_accepted_texts_are_in_range_and_read_right(text: str) -> None:
    ms = occurred_at_ms(text)
    instant = _instant(text)
    if ms is not None:
        assert text[10] in "Tt" and (text.endswith(("Z", "z")) or text[-6] in "+-"), text
        assert instant is not None, text
        assert MIN_OCCURRED_MS <= _exact_ms(instant) <= MAX_OCCURRED_MS, text
        assert ms == to_epoch_ms(instant), text  # rounded down to the millisecond
        assert parse_occurred_at(text) == instant
    elif instant is not None and text[10] in "Tt" and text[:10] not in EDGE_DAYS:
        # a zoned, in-range RFC 3339 instant is refused only for 10 fraction digits
        in_range = MIN_OCCURRED_MS <= _exact_ms(instant) <= MAX_OCCURRED_MS
        assert not in_range or ".0000000001" in text, text


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2000-01-01T00:00:00Z", MIN_OCCURRED_MS),
        ("2100-01-01T00:00:00.000000000Z", MAX_OCCURRED_MS),
        ("2100-01-01T00:00:00-00:00", MAX_OCCURRED_MS),
        ("2000-01-01T05:00:00-05:00", MIN_OCCURRED_MS + 10 * 3_600_000),
        ("2099-12-31T23:59:59.999999999Z", MAX_OCCURRED_MS - 1),
        ("2026-01-15T09:30:00.123999Z", 1_768_469_400_123),
        ("2024-02-29T00:00:00+01:00", 1_709_161_200_000),
    ],
)
def test_boundaries_are_accepted(text: str, ms: int) -> None:
    assert occurred_at_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00.001Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
        "2000-01-01T12:00:00+01:00",  # in range, but written with a positive offset on 2000-01-01
        "2100-01-01T01:00:00+02:00",  # in range, but written on 2100-01-01
        "2025-02-29T00:00:00Z",
        "2026-01-15T09:30:00",
        "2026-01-15T09:30:00Z\n",
        "\uff12026-01-15T09:30:00Z",
    ],
)
def test_out_of_range_or_malformed_texts_are_refused(text: str) -> None:
    assert occurred_at_ms(text) is None


@pytest.mark.parametrize("value", [1_768_469_400_123, 1.7e12, None, True, b"2026-01-15T09:30:00Z"])
def test_only_text_is_a_time(value: object) -> None:
    assert occurred_at_ms(value) is None


@pytest.mark.parametrize("ms", [MIN_OCCURRED_MS, 1_768_469_400_007, MAX_OCCURRED_MS])
def test_format_round_trips(ms: int) -> None:
    text = format_occurred_at(ms)
    assert occurred_at_ms(text) == ms
    assert text.endswith("Z") and len(text) == 24
