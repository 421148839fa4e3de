"""Plain configuration the streams layer receives from the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.topics import TopicNames


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
    web_enabled: bool = False  # True when an HTTP app is served inside the worker
    session_timeout_s: float = 10.0
    fault_kill_after_blocks: int = 0

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{s}" for s in self.bootstrap_servers.split(","))
