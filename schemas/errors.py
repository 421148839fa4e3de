"""Typed decoding errors: every rejected message carries a machine-readable reason."""

from __future__ import annotations

from enum import StrEnum


class InvalidReason(StrEnum):
    NOT_JSON = "not_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"


class InvalidMessage(Exception):
    """A message that cannot be decoded; `reason` is for machines, `message` for people."""

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
