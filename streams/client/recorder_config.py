"""Configuration and statistics of a `UsageRecorder` (plain frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RecorderConfig:
    """How a `UsageRecorder` buffers, batches and sends request events.

    - `max_buffered_events`: bound of the in-memory row buffer; `record()` drops (and
      counts) events beyond it. With several recording threads the bound may be exceeded
      by at most one row per thread.
    - `max_in_flight_events`: events packed but not yet acknowledged; the worker stops
      draining the buffer beyond it (unless it can spill), so memory stays bounded.
    - `linger_ms` / `poll_ms`: a non-empty buffer is packed at most `linger_ms` after the
      worker first sees it, and the worker looks every `poll_ms`: an event waits at most
      `linger_ms + poll_ms` (default 50 ms) before it is packed.
    - `max_batch_events` / `max_batch_bytes`: a record holds at most this many events and
      aims at this many encoded (uncompressed) bytes, from a running bytes/event estimate.
    - `spill_dir`: when set, batches Kafka cannot take (unreachable for `stall_ms`, or a
      failed delivery) are appended there and resent once Kafka is back; when None,
      they stay in memory (bounded as above) and new events are dropped when full.
    - `producer_options`: extra kafka-python `KafkaProducer` settings (override ours).
    """

    bootstrap_servers: str
    topic: str
    max_buffered_events: int = 500_000
    max_in_flight_events: int = 200_000
    linger_ms: int = 40
    poll_ms: int = 10
    max_batch_events: int = 20_000
    max_batch_bytes: int = 1_000_000
    compression: str | None = "lz4"
    spill_dir: Path | None = None
    spill_segment_bytes: int = 16 * 1024 * 1024
    spill_fsync: bool = False
    stall_ms: int = 2_000
    connect_timeout_ms: int = 3_000
    reconnect_backoff_ms: int = 500
    close_timeout_s: float = 10.0
    client_id: str = "keypulse-usage"
    producer_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = {
            "max_buffered_events": self.max_buffered_events,
            "max_in_flight_events": self.max_in_flight_events,
            "poll_ms": self.poll_ms,
            "max_batch_events": self.max_batch_events,
            "max_batch_bytes": self.max_batch_bytes,
            "spill_segment_bytes": self.spill_segment_bytes,
            "stall_ms": self.stall_ms,
            "connect_timeout_ms": self.connect_timeout_ms,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name}: expected a positive value, got {value}")
        if self.linger_ms < 0:
            raise ValueError(f"linger_ms: expected >= 0, got {self.linger_ms}")
        if not 1 <= self.max_batch_events <= 100_000:
            raise ValueError(f"max_batch_events: expected 1..100000, got {self.max_batch_events}")
        if not self.bootstrap_servers or not self.topic:
            raise ValueError("bootstrap_servers and topic are required")


@dataclass(frozen=True)
class RecorderStats:
    """Counters of one recorder, in events. At rest (after `flush()` returned True):
    `recorded == sent + dropped`; in general
    `recorded == sent + dropped + queued + spill_pending`.

    - `queued`: accepted and held in memory (buffer, packed, in flight), not acknowledged.
    - `sent`: acknowledged by Kafka (acks=all), including events resent from spill files.
    - `failed`: events in delivery attempts that failed (each then resent, spilled or
      dropped); a health signal, not part of the identity above.
    - `dropped`: lost for good: the buffer was full, or close() timed out with spilling off.
    - `spilled`: events ever written to spill files; `spill_pending` is what they still hold.
    """

    recorded: int
    queued: int
    sent: int
    failed: int
    dropped: int
    spilled: int
    spill_pending: int
    batches_sent: int
    connected: bool
