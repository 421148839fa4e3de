"""Plain configuration the streams layer receives from the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.topics import TopicNames
from streams.worker.ingest_plan import IngestLimits

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class StreamsConfig:
    bootstrap_servers: str
    app_id: str
    topics: TopicNames
    data_dir: Path
    batch_max_messages: int = 256
    batch_max_events: int = 50_000
    batch_max_ms: int = 500
    max_message_bytes: int = 8 * 1024 * 1024
    max_future_s: int = 300
    """Events later than their Kafka record's timestamp by more are dead-lettered."""
    raw_ttl_days: int = 35
    """The raw retention: events earlier than their record's timestamp by more are
    dead-lettered."""
    web_enabled: bool = False  # True when an HTTP app is served inside the worker
    session_timeout_s: float = 10.0
    fault_kill_after_blocks: int = 0

    @property
    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(
            max_events=self.batch_max_events,
            max_message_bytes=self.max_message_bytes,
            max_future_ms=self.max_future_s * 1000,
            max_age_ms=self.raw_ttl_days * _DAY_MS,
        )

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))
