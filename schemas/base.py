"""Common event envelope fields: schema_version, a time-ordered event_id, occurred_at."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _to_utc_ms(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcMillis = Annotated[AwareDatetime, AfterValidator(_to_utc_ms)]
"""A timezone-aware instant, normalised to UTC with millisecond precision."""


def uuid7(unix_ms: int | None = None) -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then random bits; sorts by time."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b
    return UUID(int=value)


def utc_now() -> datetime:
    return _to_utc_ms(datetime.now(UTC))


class Event(BaseModel):
    """Base of every event: frozen, tolerant of unknown extra fields (forward compatible)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Annotated[int, Field(ge=1)] = 1
    event_id: UUID = Field(default_factory=uuid7)
    occurred_at: UtcMillis = Field(default_factory=utc_now)
