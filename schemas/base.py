"""Common event envelope fields: schema_version, a time-ordered event_id, occurred_at.

Python producers may build events without `schema_version`, `event_id` or `occurred_at`
(the model fills them in), but on the wire `type`, those three and every field without a
default are required (`Event.wire_required()`): the exported JSON Schemas list them as
required, and a decoder validates with `context=WIRE`, under which a missing one is a
validation error instead of a default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from schemas.ids import EVENT_ID
from schemas.utc import to_utc_ms, utc_now
from schemas.uuid7 import uuid7
from schemas.wire_types import JsonInteger, OccurredAt

SCHEMA_VERSION = 1
"""The newest `schema_version` of every event type this code knows."""

WIRE: dict[str, Any] = {"wire": True}
"""Validation context for an object read from the wire: every required field must be there."""

EventId = Annotated[UUID, EVENT_ID]
OCCURRED_AT = OccurredAt()
UtcMillis = Annotated[datetime, OCCURRED_AT]
"""An event time: `schemas.wire_time` text on the wire, an aware UTC `datetime` with
millisecond precision in Python (which also accepts an aware `datetime` in the range)."""


_WIRE_REQUIRED: dict[type[BaseModel], tuple[str, ...]] = {}


def now_utc_ms() -> datetime:
    """The current instant as a `UtcMillis` (the default `occurred_at`)."""
    return to_utc_ms(utc_now())


def _require_wire_fields(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Export the wire-required fields as required, without a default."""
    if not issubclass(model, Event):
        return
    required = model.wire_required()
    schema["required"] = [name for name in schema.get("properties", {}) if name in required]
    for name in model.WIRE_REQUIRED:
        schema.get("properties", {}).get(name, {}).pop("default", None)


class Event(BaseModel):
    """Base of every event: frozen, tolerant of unknown extra fields (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra=_require_wire_fields)

    WIRE_REQUIRED: ClassVar[tuple[str, ...]] = (
        "type",
        "schema_version",
        "event_id",
        "occurred_at",
    )
    """Fields with a Python default that are nevertheless required on the wire."""

    schema_version: Annotated[int, JsonInteger(1, SCHEMA_VERSION)] = SCHEMA_VERSION
    event_id: EventId = Field(default_factory=uuid7)
    occurred_at: UtcMillis = Field(default_factory=now_utc_ms)

    @classmethod
    def wire_required(cls) -> tuple[str, ...]:
        """The fields a record on the wire must carry, in field order: those without a
        default and `WIRE_REQUIRED`."""
        cached = _WIRE_REQUIRED.get(cls)
        if cached is None:
            cached = _WIRE_REQUIRED[cls] = tuple(
                name
                for name, info in cls.model_fields.items()
                if info.is_required() or name in cls.WIRE_REQUIRED
            )
        return cached

    @model_validator(mode="before")
    @classmethod
    def _wire_fields_present(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is not None and info.context.get("wire") and isinstance(data, dict):
            missing = [name for name in cls.wire_required() if name not in data]
            if missing:
                raise PydanticCustomError(
                    "missing", "missing required field(s): {fields}", {"fields": ", ".join(missing)}
                )
        return data
