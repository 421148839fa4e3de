"""What the worker's agents need from the outside world: small protocols and the values
that cross them. `projections` implements these and imports nothing else of `streams`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from schemas.request_columns import Columns


@dataclass(frozen=True)
class OffsetRange:
    partition: int
    start: int
    end: int  # inclusive


@dataclass
class InsertBlock:
    """Rows for one insert, with the source ranges that produced them."""

    topic: str
    ranges: list[OffsetRange]
    columns: Columns
    count: int
    max_occurred_at_ms: int
    encoded: object = None
    """The rows in the store's own wire form, when `IngestStore.encode` prepared them."""

    @property
    def token(self) -> str:
        spans = ",".join(f"{r.partition}:{r.start}-{r.end}" for r in self.ranges)
        return f"{self.topic}|{spans}"


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    DELETED = "deleted"


class Anomaly(StrEnum):
    UNKNOWN_KEY = "unknown_key"
    DELETE_WITHOUT_REVOKE = "delete_without_revoke"
    EVENT_AFTER_DELETE = "event_after_delete"
    ACCOUNT_MISMATCH = "account_mismatch"
    UNATTRIBUTED_REQUEST = "unattributed_request"
    """Request events for a key the registry does not know (counted per key and account)."""


@dataclass(frozen=True)
class KeyState:
    account_id: str
    key_id: str
    name: str
    key_type: str
    access: str
    status: KeyStatus
    plan: str
    created_at: datetime
    revoked_at: datetime | None
    deleted_at: datetime | None
    updated_at: datetime
    version: int


class IngestStore(Protocol):
    """Where request rows land (ClickHouse), with the write-ahead record of each insert."""

    def watermarks(self, topic: str) -> dict[int, int]:
        """Highest source offset already written, per partition."""
        ...

    def last_ranges(self, topic: str) -> list[OffsetRange]:
        """Offset ranges of the newest recorded insert (possibly incomplete)."""
        ...

    def encode(self, block: InsertBlock) -> None:
        """Prepare the block's rows for `write` (sets `block.encoded`). CPU work only, no
        I/O: safe on another thread than `write`'s, so it can run while a write does."""
        ...

    def write(self, block: InsertBlock) -> None:
        """Record the block's ranges, then insert its rows with its deduplication token
        (encoding them first unless `encode` did)."""
        ...


@dataclass(frozen=True)
class AnomalyRecord:
    account_id: str
    key_id: str
    event_id: UUID
    event_type: str
    anomaly: Anomaly
    detail: str
    occurred_at: datetime
    version: int


class KeyStore(Protocol):
    """The key registry (ClickHouse `keys`)."""

    def load(self, key_ids: list[str]) -> dict[str, KeyState]:
        """Current state of each known key among `key_ids`."""
        ...

    def save(self, states: list[KeyState], anomalies: list[AnomalyRecord]) -> None: ...


class UnattributedReason(StrEnum):
    """Why landed request events count toward no account (the metric's `reason` label)."""

    UNKNOWN_KEY = "unknown_key"
    """The registry does not know the key."""
    ACCOUNT_MISMATCH = "account_mismatch"
    """The key belongs to another account than the one the events were sent under."""

    @property
    def anomaly(self) -> Anomaly:
        """The `key_anomalies` kind recorded for it."""
        if self is UnattributedReason.UNKNOWN_KEY:
            return Anomaly.UNATTRIBUTED_REQUEST
        return Anomaly.ACCOUNT_MISMATCH


@dataclass(frozen=True)
class PairTotal:
    """All landed request events of `key_id` sent under `account_id` (since ingest began),
    with the key's owner in the registry (None: the registry does not know the key)."""

    account_id: str
    key_id: str
    events: int
    newest_at_ms: int
    owner: str | None


@dataclass(frozen=True)
class UnattributedEvents:
    """`events` landed request events of `key_id` sent under `account_id` found
    unattributed for `reason` (a running total: a later finding of the same account, key
    and reason replaces an earlier one). `newest_at_ms` is the newest event time of the
    pair (epoch ms); `owner` the account that owns the key (account mismatch only)."""

    account_id: str
    key_id: str
    reason: UnattributedReason
    events: int
    newest_at_ms: int
    owner: str | None = None


Recorded = dict[tuple[str, str, UnattributedReason], int]
"""(account_id, key_id, reason) -> events of the newest recorded finding."""


class AttributionStore(Protocol):
    """The landed pairs the registry does not attribute, and where findings are recorded."""

    def unattributed(self) -> list[PairTotal]:
        """Every (account_id, key_id) with landed request events whose key the registry
        does not know or gives to another account (deleted keys count as known)."""
        ...

    def recorded(self) -> Recorded:
        """The findings recorded so far (`key_anomalies`), newest per account, key, reason."""
        ...

    def record(self, findings: list[UnattributedEvents]) -> None:
        """Record the findings; one row per account, key and reason, the largest count
        wins (recording a finding again, from any worker, changes nothing)."""
        ...
