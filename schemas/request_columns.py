"""The columnar body of a `RequestBatch` and its fast validator.

A batch carries one list per field (`COLUMNS`), all of the same length. `check_columns`
checks column by column: each check first runs over the whole column in C (types and
extremes of a number column, the distinct values of a string column, one pass over the
joined event ids) and only when that fails scans the column value by value with the
field's `schemas.wire_types` rule (`RULES`) - the very rule of the pydantic models - to
normalise integer-valued floats and to name every bad row. A body of one row (a single
event, a batch of one) goes straight to the rules. A row is invalid when any of its values
is; the other rows stay valid.

`row_as_event` turns a row of the raw body back into a single `request.completed`-shaped
object (what a dead-lettered row carries).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from schemas.errors import InvalidMessage, InvalidReason
from schemas.ids import ACCOUNT_ID, ACCOUNT_ID_PATTERN, EVENT_ID_TEXT, KEY_ID, KEY_ID_PATTERN
from schemas.request_bounds import HTTP_METHODS, MAX_BATCH_EVENTS, valid_ip, valid_route
from schemas.requests import (
    BYTES_OUT,
    CLIENT_IP,
    FLAG,
    LATENCY_MS,
    OCCURRED_AT_MS,
    ROUTE,
    STATUS,
)
from schemas.wire_time import format_occurred_at
from schemas.wire_types import JsonInteger, JsonNumber, WireRule

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
RowErrors = dict[int, str]
Check = Callable[[list[Any]], tuple[list[Any], RowErrors] | None]
"""A column check: None when every value is valid as it is, else the column with its
valid values normalised and, for each bad row, why (`expected ..., got ...`)."""

_KEY = re.compile(KEY_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
_UUID_LENGTH = 36
_UUID_HYPHENS = (8, 13, 18, 23)
_UUID_CHARS = b"0123456789abcdef-"
_INT: frozenset[type] = frozenset((int,))
_NUMBER: frozenset[type] = frozenset((int, float))
_BOOL: frozenset[type] = frozenset((bool,))


class _Method(WireRule):
    @property
    def expected(self) -> str:
        return f"one of {sorted(HTTP_METHODS)}"

    def wire_value(self, value: Any) -> str:
        if type(value) is not str or value not in HTTP_METHODS:
            raise self.reject(value)
        return value


def _schema_error(detail: str) -> InvalidMessage:
    return InvalidMessage(InvalidReason.SCHEMA_VIOLATION, detail)


def _scan(rule: WireRule, values: list[Any]) -> tuple[list[Any], RowErrors]:
    """Every value through `rule`: the normalised column and the bad rows."""
    out = list(values)
    errors: RowErrors = {}
    for row, value in enumerate(values):
        try:
            out[row] = rule.wire_value(value)
        except ValueError as exc:
            errors[row] = str(exc)
    return out, errors


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


def _event_ids(values: list[Any]) -> tuple[list[Any], RowErrors] | None:
    if _all_canonical_uuids(values):
        return None
    return _scan(EVENT_ID_TEXT, values)


def _numbers(rule: JsonInteger | JsonNumber) -> Check:
    """Values of exactly the rule's types within its bounds (NaN is never within); the
    scan also takes integer-valued floats for an integer rule."""
    types = _INT if isinstance(rule, JsonInteger) else _NUMBER
    floats = float in types
    lo, hi = rule.lo, rule.hi

    def check(values: list[Any]) -> tuple[list[Any], RowErrors] | None:
        if (
            set(map(type, values)) <= types
            and lo <= min(values)
            and max(values) <= hi
            and not (floats and math.isnan(sum(values)))  # min() and max() skip NaN
        ):
            return None
        return _scan(rule, values)

    return check


def _strings(rule: WireRule, valid: Callable[[str], bool]) -> Check:
    """Strings for which `valid` holds, each distinct value checked once."""

    def ok(value: Any) -> bool:
        return type(value) is str and valid(value)

    def check(values: list[Any]) -> tuple[list[Any], RowErrors] | None:
        try:
            distinct = set(values)
        except TypeError:  # an unhashable value: the scan names it
            distinct = {None}
        if all(map(ok, distinct)):
            return None
        return _scan(rule, values)

    return check


def _flags(values: list[Any]) -> tuple[list[Any], RowErrors] | None:
    if set(map(type, values)) <= _BOOL:
        return None
    return _scan(FLAG, values)


RULES: dict[str, WireRule] = {
    "event_id": EVENT_ID_TEXT,
    "occurred_at_ms": OCCURRED_AT_MS,
    "key_id": KEY_ID,
    "account_id": ACCOUNT_ID,
    "method": _Method(),
    "route": ROUTE,
    "status": STATUS,
    "latency_ms": LATENCY_MS,
    "client_ip": CLIENT_IP,
    "bytes_out": BYTES_OUT,
    "is_render": FLAG,
    "watermarked": FLAG,
}
"""The rule of each column's values (those of the models' fields)."""

_CHECKS: dict[str, Check] = {
    "event_id": _event_ids,
    "occurred_at_ms": _numbers(OCCURRED_AT_MS),
    "key_id": _strings(KEY_ID, lambda v: _KEY.fullmatch(v) is not None),
    "account_id": _strings(ACCOUNT_ID, lambda v: _ACCOUNT.fullmatch(v) is not None),
    "method": _strings(RULES["method"], HTTP_METHODS.__contains__),
    "route": _strings(ROUTE, valid_route),
    "status": _numbers(STATUS),
    "latency_ms": _numbers(LATENCY_MS),
    "client_ip": _strings(CLIENT_IP, valid_ip),
    "bytes_out": _numbers(BYTES_OUT),
    "is_render": _flags,
    "watermarked": _flags,
}
"""Whole-column checks: one pass in C, the per-value scan only when it fails."""


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


@dataclass(frozen=True)
class CheckedColumns:
    """A batch body after `check_columns`."""

    columns: Columns
    """Every row, in order, with integer-valued floats normalised to ints."""
    count: int
    """The number of rows, valid or not."""
    errors: RowErrors
    """For each invalid row, its first bad column: `column: expected ..., got ...`."""

    def valid(self) -> Columns:
        """The valid rows only (the columns themselves when every row is valid)."""
        if not self.errors:
            return self.columns
        keep = [row for row in range(self.count) if row not in self.errors]
        return {name: [values[row] for row in keep] for name, values in self.columns.items()}


def check_columns(body: Any) -> CheckedColumns:
    """Check a batch's `columns` object row by row.

    Raises `InvalidMessage(schema_violation)` only when the body itself is broken: not an
    object, a column missing or not a list, no rows or more than `MAX_BATCH_EVENTS`,
    columns of different lengths. Extra columns are ignored.
    """
    cols = _column_lists(body)
    n = _row_count(cols)
    errors: RowErrors = {}
    for name, check in _CHECKS.items():
        outcome = check(cols[name])
        if outcome is not None:
            cols[name], bad = outcome
            for row, detail in bad.items():
                errors.setdefault(row, f"{name}: {detail}")
    return CheckedColumns(cols, n, dict(sorted(errors.items())))


def validate_columns(body: Any) -> tuple[Columns, int]:
    """All or nothing: the checked columns and their row count, or
    `InvalidMessage(schema_violation)` naming the first bad row
    (`events[row].column: expected ..., got ...`)."""
    checked = check_columns(body)
    for row, detail in checked.errors.items():
        raise _schema_error(f"events[{row}].{detail}")
    return checked.columns, checked.count


def row_as_event(body: Columns, row: int, schema_version: Any) -> dict[str, Any]:
    """Row `row` of a batch body as a single `request.completed` object, from its raw
    values. `occurred_at_ms` becomes `occurred_at` text when it is a valid time, and is
    kept as `occurred_at_ms` otherwise (a single event has no such field, so the object
    is then missing `occurred_at`, as the row was)."""
    return columns_row_as_event(body, row, "request.completed", COLUMNS, schema_version)


def columns_row_as_event(
    body: Columns, row: int, event_type: str, columns: Iterable[str], schema_version: Any
) -> dict[str, Any]:
    """Row `row` of any columnar body as the single event `event_type` (see
    `row_as_event`); a column that is missing or not a list reads as null."""
    event: dict[str, Any] = {"type": event_type, "schema_version": schema_version}
    for name in columns:
        column = body.get(name)
        value = column[row] if isinstance(column, list) else None
        if name != "occurred_at_ms":
            event[name] = value
            continue
        try:
            event["occurred_at"] = format_occurred_at(OCCURRED_AT_MS.wire_value(value))
        except ValueError:
            event["occurred_at_ms"] = value
    return event
