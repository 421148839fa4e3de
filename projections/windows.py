"""Usage windows and how they map onto the minute, hour and day rows of the rollup (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise


class Window(StrEnum):
    H24 = "24h"
    D7 = "7d"
    D30 = "30d"

    @property
    def length(self) -> timedelta:
        return {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}[
            self.value
        ]


class Tier(StrEnum):
    """The granularity of a `usage_rollup` row: its `bucket` starts a minute, hour or day."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def unit(self) -> timedelta:
        """The span one row covers."""
        return _UNITS[self]


_UNITS = {
    Tier.MINUTE: timedelta(minutes=1),
    Tier.HOUR: timedelta(hours=1),
    Tier.DAY: timedelta(days=1),
}


@dataclass(frozen=True)
class WindowPlan:
    """A window as minute-aligned spans: [start, end) read from minutes or hours.

    The window ends after the minute that contains `now` and spans `length` before that.
    The head and tail that do not fill an hour come from minute rows; whole hours
    from hour rows (none for windows shorter than `hours_from`).
    """

    start: datetime
    end: datetime
    minute_spans: tuple[tuple[datetime, datetime], ...]
    hour_span: tuple[datetime, datetime] | None


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floored = t.replace(minute=0, second=0, microsecond=0)
    return floored if floored == t else floored + timedelta(hours=1)


def plan_window(length: timedelta, now: datetime, hours_from: timedelta) -> WindowPlan:
    """Split [end - length, end) into minute spans and one hour span.

    `hours_from`: windows at least this long use the hour table for whole hours.
    """
    end = _floor_minute(now) + timedelta(minutes=1)
    start = end - length
    if length < hours_from:
        return WindowPlan(start, end, ((start, end),), None)
    h_start = _ceil_hour(start)
    h_end = end.replace(minute=0, second=0, microsecond=0)
    if h_end <= h_start:
        return WindowPlan(start, end, ((start, end),), None)
    spans = tuple(s for s in ((start, h_start), (h_end, end)) if s[0] < s[1])
    return WindowPlan(start, end, spans, (h_start, h_end))


Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class TierPlan:
    """A window as minute-aligned [start, end) split over three rollups, coarsest first.

    Whole days come from day rows, the whole hours around them from hour rows and the
    minutes that do not fill an hour from minute rows: every window is exact to the
    minute and reads at most ~120 minute, ~46 hour and 30 day rows per key.
    """

    start: datetime
    end: datetime
    minutes: tuple[Span, ...]
    hours: tuple[Span, ...]
    days: tuple[Span, ...]


def _ceil(t: datetime, unit: timedelta) -> datetime:
    floored = _floor(t, unit)
    return floored if floored == t else floored + unit


def _floor(t: datetime, unit: timedelta) -> datetime:
    if unit == timedelta(days=1):
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    return t.replace(minute=0, second=0, microsecond=0)


def _nonempty(*spans: Span) -> tuple[Span, ...]:
    return tuple(s for s in spans if s[0] < s[1])


def plan_span(start: datetime, end: datetime) -> TierPlan:
    """Split the minute-aligned [start, end) over the tiers, coarsest rows in the middle."""
    hour, day = timedelta(hours=1), timedelta(days=1)
    h0, h1 = _ceil(start, hour), _floor(end, hour)
    if h0 >= h1:
        return TierPlan(start, end, ((start, end),), (), ())
    minutes = _nonempty((start, h0), (h1, end))
    d0, d1 = _ceil(h0, day), _floor(h1, day)
    if d0 >= d1:
        return TierPlan(start, end, minutes, ((h0, h1),), ())
    return TierPlan(start, end, minutes, _nonempty((h0, d0), (d1, h1)), ((d0, d1),))


def _merged(spans: Sequence[Span]) -> tuple[Span, ...]:
    """The union of `spans` as sorted, disjoint spans (touching spans joined)."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


@dataclass(frozen=True)
class NestedPlan:
    """Windows that all end after the minute of `now`, read together from the tiers.

    `starts[i]` is where the i-th requested window starts. The union of the windows is
    cut at every start and planned piece by piece (`plan_span`), so no hour or day row
    straddles a start: a planned row at `t` belongs to window i exactly when
    `t >= starts[i]`. `tiers` holds the merged spans of each tier over the union.
    """

    end: datetime
    starts: tuple[datetime, ...]
    tiers: TierPlan

    def spans(self) -> tuple[tuple[Tier, tuple[Span, ...]], ...]:
        """(tier, spans) for the tiers with anything to read, finest first."""
        t = self.tiers
        pairs = ((Tier.MINUTE, t.minutes), (Tier.HOUR, t.hours), (Tier.DAY, t.days))
        return tuple((tier, spans) for tier, spans in pairs if spans)


def plan_nested(lengths: Sequence[timedelta], now: datetime) -> NestedPlan:
    """Plan windows of `lengths` (at least one) ending after the minute of `now` (UTC)."""
    if not lengths:
        raise ValueError("plan_nested needs at least one window")
    end = _floor_minute(now) + timedelta(minutes=1)
    starts = tuple(end - length for length in lengths)
    cuts = [*sorted(set(starts)), end]
    pieces = [plan_span(a, b) for a, b in pairwise(cuts)]
    union = TierPlan(
        cuts[0],
        end,
        _merged([s for p in pieces for s in p.minutes]),
        _merged([s for p in pieces for s in p.hours]),
        _merged([s for p in pieces for s in p.days]),
    )
    return NestedPlan(end, starts, union)
