"""What the agents need from the outside world, as small protocols (wired in infra)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from streams.ingest_plan import InsertBlock, OffsetRange
from streams.key_registry import Anomaly, KeyState


class IngestStore(Protocol):
    """Where request rows land (ClickHouse), with the write-ahead record of each insert."""

    def watermarks(self, topic: str) -> dict[int, int]:
        """Highest source offset already written, per partition."""
        ...

    def last_ranges(self, topic: str) -> list[OffsetRange]:
        """Offset ranges of the newest recorded insert (possibly incomplete)."""
        ...

    def write(self, block: InsertBlock) -> None:
        """Record the block's ranges, then insert its rows with its deduplication token."""
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
