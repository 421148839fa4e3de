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

Verification outcomes ride on the same topic: a `verification.batch` (columnar,
`OUTCOME_COLUMNS`) or a single `verification.outcome`, decoded by `decode_requests` into
`DecodedRequests.outcomes` by the same rules (envelope first, then row by row; a row
names a key and account for every outcome but `malformed` and `unknown`, and none for
those; those two alone may carry `presented_digest`, the optional column a batch may
leave out, as batches written before it did).

Headers on `keypulse.notifications`: `keypulse-replay` (`REPLAY_HEADER`) carries the
delivery id a replayed notification is meant for (absent on the evaluator's own messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.alerts import SCHEMA_VERSION, AlertRuleEvent, Notification
from schemas.base import OCCURRED_AT, WIRE, Event
from schemas.base import SCHEMA_VERSION as EVENT_SCHEMA_VERSION
from schemas.errors import InvalidMessage, InvalidReason
from schemas.ids import ACCOUNT_ID, EVENT_ID, EVENT_ID_TEXT, KEY_ID
from schemas.keys import (
    KEY_EVENT_ADAPTER,
    KEY_EVENT_TYPES,
    KeyEventModel,
)
from schemas.request_bounds import MAX_BATCH_EVENTS, json_integer
from schemas.request_columns import (
    COLUMNS,
    Columns,
    check_columns,
    columns_row_as_event,
    row_as_event,
)
from schemas.requests import (
    CLIENT_IP,
    KEYLESS_OUTCOMES,
    OCCURRED_AT_MS,
    OUTCOME_COUNT,
    OUTCOMES,
    PRESENTED_DIGEST,
    OutcomeBatch,
    OutcomeRecorded,
    RequestBatch,
    RequestCompleted,
)
from schemas.wire_time import occurred_at_ms
from schemas.wire_types import WireRule

T = TypeVar("T")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
NOTIFICATION_VERSION = SCHEMA_VERSION

RULE_EVENT_TYPES = ("alert_rule_created", "alert_rule_updated", "alert_rule_deleted")
RULE_EVENT_ADAPTER: TypeAdapter[AlertRuleEvent] = TypeAdapter(AlertRuleEvent)
REPLAY_HEADER = "keypulse-replay"
OUTCOME_TYPES = ("verification.batch", "verification.outcome")

SUPPORTED_VERSIONS: dict[str, int] = dict.fromkeys(
    (
        "request.completed",
        "request.batch",
        *OUTCOME_TYPES,
        *KEY_EVENT_TYPES,
        *RULE_EVENT_TYPES,
    ),
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
    outcomes: Columns = field(default_factory=dict)
    """Of a `verification.*` record, its valid outcome rows (`OUTCOME_COLUMNS`); then
    `columns` holds no rows and `rejected` the invalid outcome rows."""
    outcome_count: int = 0
    """The number of valid outcome rows."""


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


OUTCOME_COLUMNS: tuple[str, ...] = (
    "event_id",
    "occurred_at_ms",
    "outcome",
    "key_id",
    "account_id",
    "client_ip",
    "count",
    "presented_digest",
)
"""Column order of a `verification.batch` (`schemas.requests.OutcomeColumns`)."""
OPTIONAL_OUTCOME_COLUMNS = frozenset(("presented_digest",))
"""Columns a batch may leave out (added after the first version): all null then."""

_OUTCOME_RULES: dict[str, tuple[WireRule, bool]] = {
    "event_id": (EVENT_ID_TEXT, False),
    "occurred_at_ms": (OCCURRED_AT_MS, False),
    "key_id": (KEY_ID, True),
    "account_id": (ACCOUNT_ID, True),
    "client_ip": (CLIENT_IP, True),
    "count": (OUTCOME_COUNT, False),
    "presented_digest": (PRESENTED_DIGEST, True),
}
"""Each outcome column's rule, and whether it may be null (`outcome` is checked apart)."""

_KEYLESS = KEYLESS_OUTCOMES
"""Outcomes of a presented string that names no key: they carry no key or account (and
may carry the string's digest)."""


def _outcome_row(cols: Columns, row: int) -> list[Any]:
    """Row `row` checked and normalised, in `OUTCOME_COLUMNS` order (raises ValueError
    naming the column)."""
    out: list[Any] = []
    for name in OUTCOME_COLUMNS:
        value = cols[name][row]
        if name == "outcome":
            if type(value) is not str or value not in OUTCOMES:
                raise ValueError(f"outcome: expected one of {sorted(OUTCOMES)}, got {value!r}")
            out.append(value)
            continue
        rule, nullable = _OUTCOME_RULES[name]
        if value is None and nullable:
            out.append(None)
            continue
        try:
            out.append(rule.wire_value(value))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    outcome, key_id, account_id, digest = out[2], out[3], out[4], out[7]
    if (key_id is None) != (account_id is None):
        raise ValueError("key_id and account_id: expected both or neither")
    if outcome in _KEYLESS and key_id is not None:
        raise ValueError(f"key_id: a {outcome} outcome names no key, got {key_id!r}")
    if outcome not in _KEYLESS and key_id is None:
        raise ValueError(f"key_id: a {outcome} outcome names its key, got None")
    if outcome not in _KEYLESS and digest is not None:
        raise ValueError(
            f"presented_digest: only a malformed or unknown outcome carries one, "
            f"not a {outcome} outcome (its key names it)"
        )
    return out


def outcome_as_event(cols: Columns, row: int, version: Any) -> dict[str, Any]:
    """Row `row` of an outcome batch body as a single `verification.outcome` object (the
    raw values; `occurred_at_ms` as `occurred_at` text when it is a valid time)."""
    return columns_row_as_event(cols, row, "verification.outcome", OUTCOME_COLUMNS, version)


def _outcome_body(body: Any) -> tuple[Columns, int]:
    """The body's outcome columns as lists and their common length (raises if broken)."""
    if not isinstance(body, dict):
        raise _schema_error("columns: expected an object")
    missing = [c for c in OUTCOME_COLUMNS if c not in body and c not in OPTIONAL_OUTCOME_COLUMNS]
    if missing:
        raise _schema_error(f"columns: missing {missing}")
    cols: Columns = {}
    for name in OUTCOME_COLUMNS:
        if name not in body:
            continue
        if type(body[name]) is not list:
            raise _schema_error(f"columns.{name}: expected a list")
        cols[name] = body[name]
    n = len(cols["event_id"])
    if not 1 <= n <= MAX_BATCH_EVENTS:
        raise _schema_error(f"columns: expected 1..{MAX_BATCH_EVENTS} rows, got {n}")
    for name in OPTIONAL_OUTCOME_COLUMNS - cols.keys():
        cols[name] = [None] * n
    for name, values in cols.items():
        if len(values) != n:
            raise _schema_error(f"columns.{name}: {len(values)} values, expected {n}")
    return cols, n


def _no_requests() -> Columns:
    return {name: [] for name in COLUMNS}


def _outcomes(obj: dict[str, Any], kind: str, version: int) -> DecodedRequests:
    """An outcome record's valid rows and rejected rows (raises if its envelope is broken,
    or if a single outcome event is invalid)."""
    if kind == "verification.outcome":
        _missing(obj, OutcomeRecorded)
        ms = occurred_at_ms(obj["occurred_at"])
        if ms is None:
            raise _schema_error(f"occurred_at: {OCCURRED_AT.reject(obj['occurred_at'])}")
        body = {name: [obj.get(name)] for name in OUTCOME_COLUMNS}
        body["occurred_at_ms"] = [ms]
        body["count"] = [obj.get("count", 1)]
        try:
            row = _outcome_row(body, 0)
        except ValueError as exc:
            raise _schema_error(str(exc)) from None
        columns = {name: [value] for name, value in zip(OUTCOME_COLUMNS, row, strict=True)}
        return DecodedRequests(_no_requests(), 0, outcomes=columns, outcome_count=1, single=True)
    _missing(obj, OutcomeBatch)
    _wire_field(obj, "event_id", EVENT_ID)
    _wire_field(obj, "occurred_at", OCCURRED_AT)
    _wire_field(obj, "batch_id", EVENT_ID)
    cols, n = _outcome_body(obj["columns"])
    valid: Columns = {name: [] for name in OUTCOME_COLUMNS}
    rejected: list[RejectedRow] = []
    for index in range(n):
        try:
            row = _outcome_row(cols, index)
        except ValueError as exc:
            rejected.append(
                RejectedRow(
                    index=index,
                    reason=InvalidReason.SCHEMA_VIOLATION,
                    message=f"events[{index}].{exc}"[:500],
                    row=outcome_as_event(cols, index, version),
                )
            )
            continue
        for name, value in zip(OUTCOME_COLUMNS, row, strict=True):
            valid[name].append(value)
    return DecodedRequests(
        _no_requests(),
        0,
        tuple(rejected),
        outcomes=valid,
        outcome_count=n - len(rejected),
    )


def decode_requests(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> DecodedRequests:
    """Decode a `keypulse.requests` record: a batch envelope or a single event, of
    requests or of verification outcomes (`outcomes`).

    Raises `InvalidMessage` for a record rejected whole: not JSON, too large, a missing
    or unknown `type`, a bad `schema_version`, a broken batch envelope, an invalid single
    event. A batch's invalid rows are in `rejected`, its valid rows in `columns`.
    """
    obj = _load(data, max_bytes)
    kind, version = _check_type(obj, ("request.batch", "request.completed", *OUTCOME_TYPES))
    if kind == "request.batch":
        return _batch(obj, version)
    if kind in OUTCOME_TYPES:
        return _outcomes(obj, kind, version)
    return DecodedRequests(columns=_single_event_columns(obj), count=1, single=True)


def decode_request_batch(data: bytes) -> RequestBatch:
    """Full-model decode of a batch, all or nothing (slow path: tools, tests, schema checks)."""
    obj = _load(data, MAX_MESSAGE_BYTES)
    _check_type(obj, ("request.batch",))
    return _validated(lambda o: RequestBatch.model_validate(o, context=WIRE), obj)


def decode_outcome_batch(data: bytes) -> OutcomeBatch:
    """Full-model decode of an outcome batch, all or nothing (tools, tests, schema checks)."""
    obj = _load(data, MAX_MESSAGE_BYTES)
    _check_type(obj, ("verification.batch",))
    return _validated(lambda o: OutcomeBatch.model_validate(o, context=WIRE), obj)


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
