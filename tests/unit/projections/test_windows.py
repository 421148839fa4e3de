"""The tier planning behind every usage read: exact to the minute, each minute once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.windows import NestedPlan, Span, Tier, Window, plan_nested


def _rows(plan: NestedPlan) -> list[tuple[datetime, datetime]]:
    """Every row the plan reads, as the [start, end) it covers, sorted."""
    rows = []
    for tier, spans in plan.spans():
        unit = tier.unit
        for start, end in spans:
            t = start
            while t < end:
                rows.append((t, t + unit))
                t += unit
    return sorted(rows)


def _covers(rows: list[tuple[datetime, datetime]], span: Span) -> None:
    """`rows` tile `span` exactly: contiguous, no overlap, no gap, nothing outside."""
    assert rows, span
    assert rows[0][0] == span[0]
    assert rows[-1][1] == span[1]
    for (_, end), (start, _) in pairwise(rows):
        assert end == start


def _aligned(plan: NestedPlan) -> None:
    for tier, spans in plan.spans():
        for start, end in spans:
            assert (start.timestamp() % tier.unit.total_seconds()) == 0, (tier, start)
            assert (end.timestamp() % tier.unit.total_seconds()) == 0, (tier, end)


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
lengths = st.lists(
    st.integers(min_value=1, max_value=40 * 24 * 60).map(lambda m: timedelta(minutes=m)),
    min_size=1,
    max_size=4,
)


@given(now=instants, windows=lengths)
def test_each_window_is_exactly_its_rows_from_its_start(
    now: datetime, windows: list[timedelta]
) -> None:
    plan = plan_nested(windows, now)
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert plan.end == end
    _aligned(plan)
    rows = _rows(plan)
    _covers(rows, (min(plan.starts), end))
    for length, start in zip(windows, plan.starts, strict=True):
        assert start == end - length
        _covers([r for r in rows if r[0] >= start], (start, end))


def test_standard_windows_read_few_rows() -> None:
    now = datetime(2026, 11, 26, 5, 30, 12, tzinfo=UTC)
    plan = plan_nested([w.length for w in Window], now)
    by_tier = {tier: _rows_of(plan, tier) for tier in Tier}
    assert by_tier[Tier.DAY] <= 30
    assert by_tier[Tier.HOUR] <= 3 * 46
    assert by_tier[Tier.MINUTE] <= 4 * 60


def _rows_of(plan: NestedPlan, tier: Tier) -> int:
    return sum(
        int((end - start) / tier.unit)
        for t, spans in plan.spans()
        if t is tier
        for start, end in spans
    )


def test_needs_a_window() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        plan_nested([], datetime(2026, 1, 1, tzinfo=UTC))
