"""Usage windows and how they map onto the minute and hour rollups (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Window(StrEnum):
    H24 = "24h"
    D7 = "7d"
    D30 = "30d"

    @property
    def length(self) -> timedelta:
        return {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}[
            self.value
        ]


@dataclass(frozen=True)
class WindowPlan:
    """A window as minute-aligned spans: [start, end) read from minutes or hours.

    The window ends after the minute that contains `now` and spans `length` before that.
    The head and tail that do not fill an hour come from `usage_minute`; whole hours
    come from `usage_hour` (none for windows of a day or less).
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

    Whole days come from `usage_day`, the whole hours around them from `usage_hour`,
    and the minutes that do not fill an hour from `usage_minute`: every window is exact
    to the minute and reads at most ~120 minute, ~46 hour and 30 day rows per key.
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


def plan_tiers(length: timedelta, now: datetime) -> TierPlan:
    """Split the window of `length` ending after the minute of `now` (UTC) over the tiers."""
    end = _floor_minute(now) + timedelta(minutes=1)
    start = end - length
    hour, day = timedelta(hours=1), timedelta(days=1)
    h0, h1 = _ceil(start, hour), _floor(end, hour)
    if h0 >= h1:
        return TierPlan(start, end, ((start, end),), (), ())
    minutes = _nonempty((start, h0), (h1, end))
    d0, d1 = _ceil(h0, day), _floor(h1, day)
    if d0 >= d1:
        return TierPlan(start, end, minutes, ((h0, h1),), ())
    return TierPlan(start, end, minutes, _nonempty((h0, d0), (d1, h1)), ((d0, d1),))
