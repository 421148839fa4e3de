"""Bytes <-> models with orjson, for every topic. Every failure is an `InvalidMessage`.

Compatibility rule: a consumer accepts unknown extra fields and every schema version up
to the one it knows (`SUPPORTED_VERSIONS` by `type`; `NOTIFICATION_VERSION` for
notifications, which carry no `type`); a newer version is `unsupported_version`, a
`schema_version` that is not a positive integer a `schema_violation` (absent means 1).

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
from schemas.errors import InvalidMessage, InvalidReason
from schemas.keys import (
    KEY_EVENT_ADAPTER,
    KEY_EVENT_TYPES,
    KeyCreated,
    KeyDeleted,
    KeyRenamed,
    KeyRevoked,
)
from schemas.request_columns import Columns, validate_columns
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms

T = TypeVar("T")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
NOTIFICATION_VERSION = SCHEMA_VERSION

RULE_EVENT_TYPES = ("alert_rule_created", "alert_rule_updated", "alert_rule_deleted")
RULE_EVENT_ADAPTER: TypeAdapter[AlertRuleEvent] = TypeAdapter(AlertRuleEvent)
REPLAY_HEADER = "keypulse-replay"

SUPPORTED_VERSIONS: dict[str, int] = {
    "request.completed": 1,
    "request.batch": 1,
    **dict.fromkeys(KEY_EVENT_TYPES, 1),
    **dict.fromkeys(RULE_EVENT_TYPES, 1),
}


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


def _check_version(obj: dict[str, Any], kind: str, newest: int) -> None:
    version = obj.get("schema_version", 1)
    if type(version) is not int or version < 1:
        raise InvalidMessage(
            InvalidReason.SCHEMA_VIOLATION,
            f"schema_version: expected a positive integer, got {version!r}",
        )
    if version > newest:
        raise InvalidMessage(
            InvalidReason.UNSUPPORTED_VERSION,
            f"{kind} schema_version {version} is newer than {newest}",
        )


def _check_type(obj: dict[str, Any], allowed: tuple[str, ...]) -> str:
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise InvalidMessage(
            InvalidReason.UNKNOWN_TYPE, f"type {kind!r} is not one of {', '.join(allowed)}"
        )
    _check_version(obj, kind, SUPPORTED_VERSIONS[kind])
    return kind


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)[:500]


def _validated(validate: Callable[[dict[str, Any]], T], obj: dict[str, Any]) -> T:
    """`validate(obj)`, with a pydantic error turned into `schema_violation`."""
    try:
        return validate(obj)
    except ValidationError as exc:
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, _describe(exc)) from None


@dataclass(frozen=True)
class RejectedRow:
    """One invalid row of a batch, dead-lettered on its own."""

    index: int
    """The row's index in the batch."""
    reason: InvalidReason
    message: str
    row: dict[str, Any]
    """The row as a single `request.completed`-shaped object, from the batch's raw values."""


@dataclass(frozen=True)
class DecodedRequests:
    """Request events of one record as columns (see `schemas.request_columns.COLUMNS`):
    the valid rows, and the rejected rows of a batch."""

    columns: Columns
    count: int
    rejected: tuple[RejectedRow, ...] = ()


def _single_event_columns(event: RequestCompleted) -> Columns:
    return {
        "event_id": [str(event.event_id)],
        "occurred_at_ms": [to_epoch_ms(event.occurred_at)],
        "key_id": [event.key_id],
        "account_id": [event.account_id],
        "method": [event.method],
        "route": [event.route],
        "status": [event.status],
        "latency_ms": [event.latency_ms],
        "client_ip": [str(event.client_ip)],
        "bytes_out": [event.bytes_out],
        "is_render": [event.is_render],
        "watermarked": [event.watermarked],
    }


def decode_requests(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> DecodedRequests:
    """Decode a `keypulse.requests` record: a batch envelope or a single event."""
    obj = _load(data, max_bytes)
    kind = _check_type(obj, ("request.batch", "request.completed"))
    if kind == "request.batch":
        columns, count = validate_columns(obj.get("columns"))
        return DecodedRequests(columns=columns, count=count)
    event = _validated(RequestCompleted.model_validate, obj)
    return DecodedRequests(columns=_single_event_columns(event), count=1)


def decode_request_batch(data: bytes) -> RequestBatch:
    """Full-model decode of a batch (slow path: tools, tests, schema checks)."""
    obj = _load(data, MAX_MESSAGE_BYTES)
    _check_type(obj, ("request.batch",))
    return _validated(RequestBatch.model_validate, obj)


KeyEventModel = KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted


def decode_key_event(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> KeyEventModel:
    """Decode a `keypulse.key-events` record into its lifecycle event."""
    obj = _load(data, max_bytes)
    _check_type(obj, KEY_EVENT_TYPES)
    return _validated(KEY_EVENT_ADAPTER.validate_python, obj)


def decode_rule_event(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> AlertRuleEvent:
    """Decode a `keypulse.alert-rules` record."""
    obj = _load(data, max_bytes)
    _check_type(obj, RULE_EVENT_TYPES)
    return _validated(RULE_EVENT_ADAPTER.validate_python, obj)


def decode_notification(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Notification:
    """Decode a `keypulse.notifications` record (it carries no `type`)."""
    obj = _load(data, max_bytes)
    _check_version(obj, "notification", NOTIFICATION_VERSION)
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
