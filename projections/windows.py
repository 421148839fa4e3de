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
