"""How the console writes times (pure; every relative time takes `now`): one copy for
every page."""

from __future__ import annotations

from datetime import datetime

from schemas.utc import as_utc

__all__ = ["DASH", "ago", "until", "when"]

DASH = "—"
_MINUTE, _HOUR, _DAY = 60, 3600, 86_400
_HOURS_UP_TO = 48 * _HOUR
"""Up to two days a time reads in hours ("47 h ago"), then in days."""
_DATE_AFTER_DAYS = 30


def when(t: datetime | None) -> str:
    """`2025-06-01 14:03 UTC`, or a dash."""
    return DASH if t is None else as_utc(t).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    if seconds < _HOUR:
        return f"{int(seconds // _MINUTE)} min"
    if seconds < _HOURS_UP_TO:
        return f"{int(seconds // _HOUR)} h"
    return f"{int(seconds // _DAY)} days"


def ago(t: datetime | None, now: datetime) -> str:
    """ "never", "just now" (under a minute, or a clock a little ahead), "5 min ago",
    "47 h ago", "5 days ago"; older than 30 days, the date."""
    if t is None:
        return "never"
    seconds = (now - t).total_seconds()
    if seconds < _MINUTE:
        return "just now"
    if seconds > _DATE_AFTER_DAYS * _DAY:
        return as_utc(t).strftime("%Y-%m-%d")
    return f"{_span(seconds)} ago"


def until(t: datetime, now: datetime) -> str:
    """`t` after `now`: "in under a minute", "in 5 min", "in 23 h", "in 3 days"."""
    seconds = (t - now).total_seconds()
    return "in under a minute" if seconds < _MINUTE else f"in {_span(seconds)}"
