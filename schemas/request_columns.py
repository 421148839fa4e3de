"""The columnar body of a `RequestBatch` and its fast validator.

A batch carries one list per field (`COLUMNS`), all of the same length. `validate_columns`
checks column by column: each check first runs over the whole column in C (types and
extremes of a number column, the distinct values of a string column, one pass over the
joined event ids) and only when that fails scans row by row to name the first bad row.
The rules are those of `schemas.request_bounds`, the same as `RequestColumns`; the tests
hold the two validators to each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from schemas.errors import InvalidMessage, InvalidReason
from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.request_bounds import (
    EVENT_ID_PATTERN,
    HTTP_METHODS,
    MAX_BATCH_EVENTS,
    MAX_BYTES_OUT,
    MAX_LATENCY_MS,
    MAX_OCCURRED_MS,
    MAX_ROUTE_LENGTH,
    MAX_STATUS,
    MIN_BYTES_OUT,
    MIN_LATENCY_MS,
    MIN_OCCURRED_MS,
    MIN_ROUTE_LENGTH,
    MIN_STATUS,
    valid_ip,
    valid_route,
)

COLUMNS: tuple[str, ...] = (
    "event_id",
    "occurred_at_ms",
    "key_id",
    "account_id",
    "method",
    "route",
    "status",
    "latency_ms",
    "client_ip",
    "bytes_out",
    "is_render",
    "watermarked",
)
"""Column order of a batch; `occurred_at_ms` is Unix epoch milliseconds (UTC)."""

Columns = dict[str, list[Any]]
Check = Callable[[str, list[Any]], None]

_UUID = re.compile(EVENT_ID_PATTERN)
_KEY = re.compile(KEY_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
_UUID_LENGTH = 36
_UUID_HYPHENS = (8, 13, 18, 23)
_UUID_CHARS = b"0123456789abcdef-"
_INT: frozenset[type] = frozenset((int,))
_NUMBER: frozenset[type] = frozenset((int, float))
_BOOL: frozenset[type] = frozenset((bool,))


def _schema_error(detail: str) -> InvalidMessage:
    return InvalidMessage(InvalidReason.SCHEMA_VIOLATION, detail)


def _scan(column: str, values: list[Any], ok: Callable[[Any], bool], expected: str) -> None:
    """Raise naming the first row whose value is not `ok`."""
    for row, value in enumerate(values):
        if not ok(value):
            raise _schema_error(f"events[{row}].{column}: expected {expected}, got {value!r}"[:300])


def _all_canonical_uuids(values: list[Any]) -> bool:
    """True only if every value is a canonical UUID string (one pass over the joined text)."""
    try:
        if set(map(len, values)) != {_UUID_LENGTH}:
            return False
        joined = "".join(values)
    except TypeError:
        return False
    n = len(values)
    hyphens = "-" * n
    return (
        joined.isascii()
        and joined.count("-") == 4 * n
        and all(joined[at::_UUID_LENGTH] == hyphens for at in _UUID_HYPHENS)
        and not joined.encode("ascii").translate(None, _UUID_CHARS)
    )


def _check_event_ids(column: str, values: list[Any]) -> None:
    if not _all_canonical_uuids(values):
        _scan(
            column,
            values,
            lambda v: type(v) is str and _UUID.fullmatch(v) is not None,
            "a lowercase UUID string",
        )


def _numbers(types: frozenset[type], lo: int, hi: int, expected: str) -> Check:
    """Values of exactly these types within [lo, hi] (NaN is never within)."""
    floats = float in types

    def check(column: str, values: list[Any]) -> None:
        if (
            set(map(type, values)) <= types
            and lo <= min(values)
            and max(values) <= hi
            and not (floats and math.isnan(sum(values)))  # min() and max() skip NaN
        ):
            return
        _scan(column, values, lambda v: type(v) in types and lo <= v <= hi, expected)

    return check


def _strings(valid: Callable[[str], bool], expected: str) -> Check:
    """Strings for which `valid` holds, each distinct value checked once."""

    def ok(value: Any) -> bool:
        return type(value) is str and valid(value)

    def check(column: str, values: list[Any]) -> None:
        try:
            distinct = set(values)
        except TypeError:  # an unhashable value: the scan names it
            distinct = {None}
        if not all(map(ok, distinct)):
            _scan(column, values, ok, expected)

    return check


def _flags(column: str, values: list[Any]) -> None:
    if not set(map(type, values)) <= _BOOL:
        _scan(column, values, lambda v: type(v) is bool, "true or false")


_CHECKS: dict[str, Check] = {
    "event_id": _check_event_ids,
    "occurred_at_ms": _numbers(
        _INT,
        MIN_OCCURRED_MS,
        MAX_OCCURRED_MS,
        f"an integer in [{MIN_OCCURRED_MS}, {MAX_OCCURRED_MS}]",
    ),
    "key_id": _strings(
        lambda v: _KEY.fullmatch(v) is not None, f"a string matching {KEY_ID_PATTERN}"
    ),
    "account_id": _strings(
        lambda v: _ACCOUNT.fullmatch(v) is not None, f"a string matching {ACCOUNT_ID_PATTERN}"
    ),
    "method": _strings(HTTP_METHODS.__contains__, f"one of {sorted(HTTP_METHODS)}"),
    "route": _strings(
        valid_route, f"a string of {MIN_ROUTE_LENGTH}..{MAX_ROUTE_LENGTH} characters"
    ),
    "status": _numbers(_INT, MIN_STATUS, MAX_STATUS, f"an integer in [{MIN_STATUS}, {MAX_STATUS}]"),
    "latency_ms": _numbers(
        _NUMBER, MIN_LATENCY_MS, MAX_LATENCY_MS, f"a number in [{MIN_LATENCY_MS}, {MAX_LATENCY_MS}]"
    ),
    "client_ip": _strings(valid_ip, "an IPv4 or IPv6 address string"),
    "bytes_out": _numbers(_INT, MIN_BYTES_OUT, MAX_BYTES_OUT, "a non-negative Int64"),
    "is_render": _flags,
    "watermarked": _flags,
}


def _column_lists(body: Any) -> Columns:
    """The body's columns, each a list (extra columns are ignored)."""
    if not isinstance(body, dict):
        raise _schema_error("columns: expected an object")
    missing = [c for c in COLUMNS if c not in body]
    if missing:
        raise _schema_error(f"columns: missing {missing}")
    cols: Columns = {}
    for name in COLUMNS:
        values = body[name]
        if type(values) is not list:
            raise _schema_error(f"columns.{name}: expected a list")
        cols[name] = values
    return cols


def _row_count(cols: Columns) -> int:
    n = len(cols["event_id"])
    if not 1 <= n <= MAX_BATCH_EVENTS:
        raise _schema_error(f"columns: expected 1..{MAX_BATCH_EVENTS} rows, got {n}")
    for name, values in cols.items():
        if len(values) != n:
            raise _schema_error(f"columns.{name}: {len(values)} values, expected {n}")
    return n


def validate_columns(body: Any) -> tuple[Columns, int]:
    """Check a batch's `columns` object; return it (lists as given) and the row count.

    Raises `InvalidMessage(schema_violation)` naming the first bad column and, within it,
    the first bad row (`events[row].column: expected ..., got ...`).
    """
    cols = _column_lists(body)
    n = _row_count(cols)
    for name, check in _CHECKS.items():
        check(name, cols[name])
    return cols, n
