"""The wire form of an event's `occurred_at`, defined once for every event type.

On the wire `occurred_at` is an RFC 3339 date-time with a zone, matched in full by
`OCCURRED_AT_PATTERN`:

- `YYYY-MM-DDTHH:MM:SS`, a real calendar date (leap days included), hours 00-23, minutes
  and seconds 00-59 (no leap second 60);
- an optional fraction of 1 to 9 digits (read down to the millisecond);
- a zone: `Z` or `+HH:MM` / `-HH:MM` (`T` and `Z` may be lower case, as RFC 3339 allows);
- an instant from 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z inclusive
  (`schemas.request_bounds.MIN_OCCURRED_MS`..`MAX_OCCURRED_MS`, the bounds of a batch's
  `occurred_at_ms`).

A JSON Schema pattern cannot compare instants, so at the edges of the range it is
stricter than the instant: on 2000-01-01 the offset must be `Z`, `+00:00` or negative, on
2099-12-31 `Z`, `-00:00` or positive, 2100-01-01 is accepted only as `2100-01-01T00:00:00`
(zero fraction) with a zero offset, and 1999-12-31 never. So an in-range instant written
with a non-zero offset on one of those days (`2000-01-01T12:00:00+01:00`) is refused;
write it in UTC. Every text the pattern accepts is within the range; the decoders and
models use the pattern itself, so they accept exactly what the exported schema does.

The pattern is plain ECMA-262 (what JSON Schema's `pattern` means): ASCII classes only,
anchored with `^...$`. Code in this package matches it with `re.fullmatch`, never
`re.search`, whose `$` would also match before a trailing newline.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from schemas.utc import from_epoch_ms, to_epoch_ms

_D28 = "(?:0[1-9]|1[0-9]|2[0-8])"
_D29 = "(?:0[1-9]|[12][0-9])"
_D30 = "(?:0[1-9]|[12][0-9]|30)"
_D31 = "(?:0[1-9]|[12][0-9]|3[01])"
_M31 = "(?:0[13578]|1[02])"
_M30 = "(?:0[469]|11)"
_COMMON_DAY = f"(?:{_M31}-{_D31}|{_M30}-{_D30}|02-{_D28})"
"""Month and day of a date in any year (no February 29)."""
_LEAP_YEAR = "20(?:[02468][048]|[13579][26])"
"""The leap years 2000..2096 (every multiple of four in 2000..2099)."""
_MIDDLE_YEAR = "(?:200[1-9]|20[1-8][0-9]|209[0-8])"
_YEAR_2000_AFTER_JAN_1 = (
    f"2000-(?:01-(?:0[2-9]|[12][0-9]|3[01])|02-{_D29}|(?:0[3578]|1[02])-{_D31}|{_M30}-{_D30})"
)
_YEAR_2099_BEFORE_DEC_31 = f"2099-(?:(?:0[13578]|10)-{_D31}|{_M30}-{_D30}|02-{_D28}|12-{_D30})"

_TIME = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
_HHMM = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_ANY_ZONE = f"(?:[Zz]|[+-]{_HHMM})"
_ZERO_ZONE = "(?:[Zz]|[+-]00:00)"

OCCURRED_AT_PATTERN = (
    "^(?:"
    f"(?:(?:{_MIDDLE_YEAR}-{_COMMON_DAY}|{_LEAP_YEAR}-02-29|{_YEAR_2000_AFTER_JAN_1}"
    f"|{_YEAR_2099_BEFORE_DEC_31}){_TIME}{_ANY_ZONE})"
    f"|2000-01-01{_TIME}(?:[Zz]|\\+00:00|-{_HHMM})"
    f"|2099-12-31{_TIME}(?:[Zz]|-00:00|\\+{_HHMM})"
    f"|2100-01-01[Tt]00:00:00(?:\\.0{{1,9}})?{_ZERO_ZONE}"
    ")$"
)
"""An `occurred_at` on the wire (see the module docstring)."""

OCCURRED_AT_RULE = (
    "an RFC 3339 date-time with a zone (Z or +HH:MM) from 2000-01-01T00:00:00Z "
    "to 2100-01-01T00:00:00Z"
)
"""`OCCURRED_AT_PATTERN` in words, for error messages and schema descriptions."""

_SHAPE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_PATTERN = re.compile(OCCURRED_AT_PATTERN)


def parse_occurred_at(value: object) -> datetime | None:
    """The instant of an `occurred_at` text (aware, in its own offset, microseconds at most),
    or None when `value` is not a string `OCCURRED_AT_PATTERN` matches."""
    if type(value) is not str or _PATTERN.fullmatch(value) is None:
        return None
    shape = _SHAPE.fullmatch(value)
    assert shape is not None  # the pattern admits only this shape
    year, month, day, hour, minute, second, fraction, sign, zone_h, zone_m = shape.groups()
    offset = timedelta(0)
    if sign is not None:
        offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
        offset = -offset if sign == "-" else offset
    micros = int((fraction or "").ljust(6, "0")[:6])
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        micros,
        tzinfo=UTC if not offset else timezone(offset),
    )


def occurred_at_ms(value: object) -> int | None:
    """Unix epoch milliseconds of an `occurred_at` text (rounded down), or None when
    `value` is not a valid one."""
    instant = parse_occurred_at(value)
    return None if instant is None else to_epoch_ms(instant)


def format_occurred_at(ms: int) -> str:
    """Epoch milliseconds as the canonical `occurred_at` text: `2026-01-15T09:30:00.123Z`."""
    return from_epoch_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
