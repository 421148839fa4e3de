"""`RenderCount`: one verifier process's renders of one test key on one UTC day.

The records of the render-counts topic (`schemas.topics.RENDER_COUNTS`, keyed by key_id).
Each verifier process publishes the running count of the renders it admitted, so the
latest record of a (process, key, day) is that process's count; a process admits a render
while its own count plus every other process's latest count stays within the quota.
A count only grows during its day; records of earlier days are ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import InvalidMessage, InvalidReason

RENDER_COUNT_VERSION = 1


class RenderCount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = RENDER_COUNT_VERSION
    process_id: Annotated[str, Field(min_length=1, max_length=100)]
    """A verifier process (random per process start: a restarted process's earlier count
    stays on the topic under its old id and keeps counting against the quota)."""
    key_id: Annotated[str, Field(min_length=1, max_length=100)]
    day: date
    """The UTC day the renders were admitted on."""
    count: Annotated[int, Field(ge=0)]
    at: datetime
    """When the process published this count."""


def encode_render_count(count: RenderCount) -> bytes:
    return count.model_dump_json().encode()


def decode_render_count(data: bytes) -> RenderCount:
    """The record's `RenderCount`; `InvalidMessage` when it is not one."""
    try:
        return RenderCount.model_validate_json(data)
    except ValidationError as exc:
        detail = f"not a render count: {exc.error_count()} error(s)"
        raise InvalidMessage(InvalidReason.SCHEMA_VIOLATION, detail) from None
