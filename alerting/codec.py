"""Bytes <-> alerting messages (rule events, notifications). Failures are `InvalidMessage`s.

Headers on `keypulse.notifications`: `keypulse-replay` carries the delivery id a replayed
notification is meant for (absent on the evaluator's own messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.alerts import AlertRuleEvent, Notification
from schemas.codec import MAX_MESSAGE_BYTES
from schemas.errors import InvalidMessage, InvalidReason

REPLAY_HEADER = "keypulse-replay"
RULE_EVENT_ADAPTER: TypeAdapter[AlertRuleEvent] = TypeAdapter(AlertRuleEvent)
RULE_EVENT_TYPES = ("alert_rule_created", "alert_rule_updated", "alert_rule_deleted")
SUPPORTED_VERSION = 1


def encode(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])[
        :500
    ]


def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(InvalidReason.TOO_LARGE, f"{len(data)} bytes")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(InvalidReason.NOT_JSON, str(exc)[:300]) from None
    if not isinstance(obj, dict):
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, "expected a JSON object")
    version = obj.get("schema_version", 1)
    if type(version) is int and version > SUPPORTED_VERSION:
        raise InvalidMessage(
            InvalidReason.UNSUPPORTED_VERSION, f"schema_version {version} is newer than 1"
        )
    return obj


def decode_rule_event(data: bytes) -> AlertRuleEvent:
    obj = _load(data)
    kind = obj.get("type")
    if kind not in RULE_EVENT_TYPES:
        raise InvalidMessage(
            InvalidReason.UNKNOWN_TYPE, f"type {kind!r} is not one of {', '.join(RULE_EVENT_TYPES)}"
        )
    try:
        return RULE_EVENT_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, _describe(exc)) from None


def decode_notification(data: bytes) -> Notification:
    obj = _load(data)
    try:
        return Notification.model_validate(obj)
    except ValidationError as exc:
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, _describe(exc)) from None


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
