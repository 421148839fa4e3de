"""Common event envelope fields: schema_version, a time-ordered event_id, occurred_at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.uuid7 import uuid7


def _to_utc_ms(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcMillis = Annotated[AwareDatetime, AfterValidator(_to_utc_ms)]
"""A timezone-aware instant, normalised to UTC with millisecond precision."""


def utc_now() -> datetime:
    return _to_utc_ms(datetime.now(UTC))


class Event(BaseModel):
    """Base of every event: frozen, tolerant of unknown extra fields (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Annotated[int, Field(ge=1)] = 1
    event_id: UUID = Field(default_factory=uuid7)
    occurred_at: UtcMillis = Field(default_factory=utc_now)
