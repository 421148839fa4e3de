"""The one UTC clock and the epoch-millisecond conversions every package uses.

- `utc_now()`: the current instant, an aware `datetime` in UTC.
- `now_ms()`: the current instant in Unix epoch milliseconds.
- `to_epoch_ms(value)`: an aware `datetime` in epoch milliseconds, rounded down. Exact:
  computed in integers, never through `timestamp() * 1000`, whose float product loses a
  millisecond for some instants.
- `from_epoch_ms(ms)`: the aware UTC `datetime` of an epoch-millisecond instant (exact).
- `as_utc(value)`: a datetime read from storage as aware UTC (naive means UTC there).
- `to_utc_ms(value)`: an aware `datetime` moved to UTC, its microseconds rounded down to
  milliseconds (the precision every event carries).

Naive datetimes are refused with `ValueError`: an instant without a zone is ambiguous.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def utc_now() -> datetime:
    """The current instant in UTC (microsecond precision)."""
    return datetime.now(UTC)


def now_ms() -> int:
    """The current instant in Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got {value!r}")


def to_epoch_ms(value: datetime) -> int:
    """`value` in Unix epoch milliseconds, rounded down (towards the past)."""
    _require_aware(value)
    return (value - EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of `ms` Unix epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def to_utc_ms(value: datetime) -> datetime:
    """`value` in UTC with millisecond precision (microseconds rounded down)."""
    _require_aware(value)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """A datetime read back from storage, as an aware UTC datetime: a naive one is taken
    to be in UTC already (ClickHouse returns `DateTime64(3, 'UTC')` columns naive)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
