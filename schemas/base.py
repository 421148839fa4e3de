"""Common event envelope fields: schema_version, a time-ordered event_id, occurred_at."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from schemas.utc import to_utc_ms, utc_now
from schemas.uuid7 import uuid7

UtcMillis = Annotated[AwareDatetime, AfterValidator(to_utc_ms)]
"""A timezone-aware instant, normalised to UTC with millisecond precision."""


def now_utc_ms() -> datetime:
    """The current instant as a `UtcMillis` (the default `occurred_at`)."""
    return to_utc_ms(utc_now())


class Event(BaseModel):
    """Base of every event: frozen, tolerant of unknown extra fields (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Annotated[int, Field(ge=1)] = 1
    event_id: UUID = Field(default_factory=uuid7)
    occurred_at: UtcMillis = Field(default_factory=now_utc_ms)
