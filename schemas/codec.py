"""Bytes <-> models with orjson, for every topic. Every failure is an `InvalidMessage`.

Compatibility rule: a consumer accepts unknown extra fields and every schema version up
to the one it knows (`SUPPORTED_VERSIONS` by `type`; `NOTIFICATION_VERSION` for
notifications, which carry no `type`); a newer version is `unsupported_version`.

Required fields: an event (every record with a `type`) must carry `type`,
`schema_version`, `event_id`, `occurred_at` and every field without a default
(`schemas.base.Event.wire_required`); a record missing one, or whose `type` is not a
string, is a `schema_violation`, never filled in; a `type` this decoder does not know is
`unknown_type`. A notification without `schema_version` is version 1.

Request records (`decode_requests`): a single `request.completed` is valid or not as a
whole. A `request.batch` is checked envelope first (its fields, then the shape of its
columns: `schemas.request_columns.check_columns`), and a broken envelope rejects the
record; then row by row: the valid rows are returned, each invalid row as a
`RejectedRow`. A single event is checked by the same column rules as a batch row, so
both envelopes accept the same events.

Headers on `keypulse.notifications`: `keypulse-replay` (`REPLAY_HEADER`) carries the
delivery id a replayed notification is meant for (absent on the evaluator's own messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.alerts import SCHEMA_VERSION, AlertRuleEvent, Notification
from schemas.base import OCCURRED_AT, WIRE, Event
from schemas.base import SCHEMA_VERSION as EVENT_SCHEMA_VERSION
from schemas.errors import InvalidMessage, InvalidReason
from schemas.ids import EVENT_ID
from schemas.keys import (
    KEY_EVENT_ADAPTER,
    KEY_EVENT_TYPES,
    KeyEventModel,
)
from schemas.request_bounds import json_integer
from schemas.request_columns import COLUMNS, Columns, check_columns, row_as_event
from schemas.requests import RequestBatch, RequestCompleted
from schemas.wire_time import occurred_at_ms
from schemas.wire_types import WireRule

T = TypeVar("T")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
NOTIFICATION_VERSION = SCHEMA_VERSION

RULE_EVENT_TYPES = ("alert_rule_created", "alert_rule_updated", "alert_rule_deleted")
RULE_EVENT_ADAPTER: TypeAdapter[AlertRuleEvent] = TypeAdapter(AlertRuleEvent)
REPLAY_HEADER = "keypulse-replay"

SUPPORTED_VERSIONS: dict[str, int] = dict.fromkeys(
    ("request.completed", "request.batch", *KEY_EVENT_TYPES, *RULE_EVENT_TYPES),
    EVENT_SCHEMA_VERSION,
)


def encode(model: BaseModel) -> bytes:
    """A model as compact JSON bytes (what goes into a Kafka record value)."""
    return orjson.dumps(model.model_dump(mode="json"))


def _load(data: bytes, max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise InvalidMessage(
            InvalidReason.TOO_LARGE, f"{len(data)} bytes exceeds the limit of {max_bytes}"
        )
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(InvalidReason.NOT_JSON, str(exc)[:300]) from None
    if not isinstance(obj, dict):
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, "expected a JSON object")
    return obj


def _schema_error(detail: str) -> InvalidMessage:
    return InvalidMessage(InvalidReason.SCHEMA_VIOLATION, detail[:500])


def _missing(obj: dict[str, Any], model: type[Event]) -> None:
    """Raise `schema_violation` listing the wire-required fields of `model` not in `obj`."""
    missing = [name for name in model.wire_required() if name not in obj]
    if missing:
        raise _schema_error(f"missing required field(s): {', '.join(missing)}")


def _check_version(obj: dict[str, Any], kind: str, newest: int, *, required: bool = True) -> int:
    """The record's `schema_version` (an integer; absent means 1 only when not `required`)."""
    if "schema_version" not in obj:
        if required:
            raise _schema_error("missing required field(s): schema_version")
        return 1
    raw = obj["schema_version"]
    version = json_integer(raw)
    if version is None or version < 1:
        raise _schema_error(f"schema_version: expected a positive integer, got {raw!r}")
    if version > newest:
        raise InvalidMessage(
            InvalidReason.UNSUPPORTED_VERSION,
            f"{kind} schema_version {version} is newer than {newest}",
        )
    return version


def _check_type(obj: dict[str, Any], allowed: tuple[str, ...]) -> tuple[str, int]:
    """The record's `type` (one of `allowed`) and `schema_version`."""
    if "type" not in obj:
        raise _schema_error("missing required field(s): type")
    kind = obj["type"]
    if not isinstance(kind, str):
        raise _schema_error(f"type: expected a string, got {kind!r}")
    if kind not in allowed:
        raise InvalidMessage(
            InvalidReason.UNKNOWN_TYPE, f"type {kind!r} is not one of {', '.join(allowed)}"
        )
    return kind, _check_version(obj, kind, SUPPORTED_VERSIONS[kind])


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)[:500]


def _validated(validate: Callable[[dict[str, Any]], T], obj: dict[str, Any]) -> T:
    """`validate(obj)`, with a pydantic error turned into `schema_violation`."""
    try:
        return validate(obj)
    except ValidationError as exc:
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, _describe(exc)) from None


def _wire_field(obj: dict[str, Any], name: str, rule: WireRule) -> None:
    try:
        rule.wire_value(obj[name])
    except ValueError as exc:
        raise _schema_error(f"{name}: {exc}") from None


@dataclass(frozen=True)
class RejectedRow:
    """One invalid row of a batch, dead-lettered on its own."""

    index: int
    """The row's index in the batch."""
    reason: InvalidReason
    message: str
    """Why, naming the row and field: `events[3].status: expected ..., got '200'`."""
    row: dict[str, Any]
    """The row as a single `request.completed`-shaped object, from the batch's raw values
    (`schemas.request_columns.row_as_event`)."""


@dataclass(frozen=True)
class DecodedRequests:
    """Request events of one record as columns (see `schemas.request_columns.COLUMNS`):
    the valid rows, and the rejected rows of a batch."""

    columns: Columns
    """The valid rows only (empty lists when every row of a batch is bad)."""
    count: int
    """The number of valid rows."""
    rejected: tuple[RejectedRow, ...] = ()
    single: bool = False
    """The record was one `request.completed` event (valid or rejected as a whole)."""
    """The invalid rows of a batch, by index."""


_SINGLE_DEFAULTS: dict[str, Any] = {"bytes_out": 0, "is_render": False, "watermarked": False}
"""What a single event may leave out (the model's defaults)."""


def _single_event_columns(obj: dict[str, Any]) -> Columns:
    """A single event as columns of one row, by the batch rules (raises if invalid)."""
    _missing(obj, RequestCompleted)
    ms = occurred_at_ms(obj["occurred_at"])
    if ms is None:
        raise _schema_error(f"occurred_at: {OCCURRED_AT.reject(obj['occurred_at'])}")
    body = {name: [obj.get(name, _SINGLE_DEFAULTS.get(name))] for name in COLUMNS}
    body["occurred_at_ms"] = [ms]
    checked = check_columns(body)
    for detail in checked.errors.values():
        raise _schema_error(detail)
    return checked.columns


def _batch(obj: dict[str, Any], version: int) -> DecodedRequests:
    """A batch's valid rows and rejected rows (raises if its envelope is broken)."""
    _missing(obj, RequestBatch)
    _wire_field(obj, "event_id", EVENT_ID)
    _wire_field(obj, "occurred_at", OCCURRED_AT)
    _wire_field(obj, "batch_id", EVENT_ID)
    body = obj["columns"]
    checked = check_columns(body)
    rejected = tuple(
        RejectedRow(
            index=row,
            reason=InvalidReason.SCHEMA_VIOLATION,
            message=f"events[{row}].{detail}"[:500],
            row=row_as_event(body, row, version),
        )
        for row, detail in checked.errors.items()
    )
    return DecodedRequests(checked.valid(), checked.count - len(rejected), rejected)


def decode_requests(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> DecodedRequests:
    """Decode a `keypulse.requests` record: a batch envelope or a single event.

    Raises `InvalidMessage` for a record rejected whole: not JSON, too large, a missing
    or unknown `type`, a bad `schema_version`, a broken batch envelope, an invalid single
    event. A batch's invalid rows are in `rejected`, its valid rows in `columns`.
    """
    obj = _load(data, max_bytes)
    kind, version = _check_type(obj, ("request.batch", "request.completed"))
    if kind == "request.batch":
        return _batch(obj, version)
    return DecodedRequests(columns=_single_event_columns(obj), count=1, single=True)


def decode_request_batch(data: bytes) -> RequestBatch:
    """Full-model decode of a batch, all or nothing (slow path: tools, tests, schema checks)."""
    obj = _load(data, MAX_MESSAGE_BYTES)
    _check_type(obj, ("request.batch",))
    return _validated(lambda o: RequestBatch.model_validate(o, context=WIRE), obj)


def decode_key_event(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> KeyEventModel:
    """Decode a `keypulse.key-events` record into its lifecycle event."""
    obj = _load(data, max_bytes)
    _check_type(obj, KEY_EVENT_TYPES)
    return _validated(lambda o: KEY_EVENT_ADAPTER.validate_python(o, context=WIRE), obj)


def decode_rule_event(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> AlertRuleEvent:
    """Decode a `keypulse.alert-rules` record."""
    obj = _load(data, max_bytes)
    _check_type(obj, RULE_EVENT_TYPES)
    return _validated(lambda o: RULE_EVENT_ADAPTER.validate_python(o, context=WIRE), obj)


def decode_notification(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Notification:
    """Decode a `keypulse.notifications` record (it carries no `type`)."""
    obj = _load(data, max_bytes)
    _check_version(obj, "notification", NOTIFICATION_VERSION, required=False)
    return _validated(Notification.model_validate, obj)


def header_value(
    headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None, name: str
) -> str | None:
    """A header's value as text from a mapping or a list of pairs (as faust gives them)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == name and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None
