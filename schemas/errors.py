"""Typed decoding errors: every rejected message carries a machine-readable reason."""

from __future__ import annotations

from enum import StrEnum


class InvalidReason(StrEnum):
    NOT_JSON = "not_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    FUTURE_TIMESTAMP = "future_timestamp"
    """`occurred_at` later than the record's Kafka timestamp by more than the allowed skew."""
    STALE_TIMESTAMP = "stale_timestamp"
    """`occurred_at` earlier than the record's Kafka timestamp by more than the raw retention."""


class InvalidMessage(Exception):
    """A message that cannot be decoded; `reason` is for machines, `message` for people."""

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
