"""The test-key render quota: 100 renders per key per UTC day, shared across processes.

The day is the UTC calendar day: the quota resets at 00:00 UTC, whatever the caller's
time zone. Live keys have no render quota.

Pure rules: `utc_day(now)`, `seconds_to_reset(now)` and `QuotaState` (the answer a
render gets: admitted or not, remaining, seconds to the reset).

`RenderQuota` counts under one lock, so within one process the limit is exact: of 150
renders of a key in a day, 100 are admitted, whatever the threads. It also holds the
latest count every other process published for a (key, day), and admits a render while
own + others' latest < limit.

`RenderCountSharing` (a background thread with its own Kafka producer and consumer) is
what makes the counts cross-process: every `interval_s` (100 ms) it publishes this
process's changed counts to the render-counts topic (`schemas.render_counts`) and it
applies the others' records as they arrive. At start it reads the topic from 00:00 UTC
today, so a restarted process counts the renders admitted earlier today (its previous
incarnation's count stays on the topic under the old process id).

Overshoot bound with N processes: a process learns of another's renders at most one
publish interval plus the propagation (produce, fetch: `fetch_wait_ms`) later, so the
day's total admitted is at most 100 plus what the other processes admit within one
interval + propagation (about 0.2 s) while the total is near 100; at worst (every process
exhausting the quota within that window) N x 100.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas.errors import InvalidMessage
from schemas.render_counts import RenderCount, decode_render_count, encode_render_count

log = logging.getLogger(__name__)

RENDER_LIMIT = 100
"""Renders per test key per UTC day."""
WINDOW_S = 86_400
"""The quota window: one UTC day (the `w` of the RateLimit-Policy header)."""

_EPOCH_DAY = date(1970, 1, 1)


def utc_day(now: datetime) -> int:
    """The UTC day of `now`, in days since 1970-01-01."""
    return int(now.timestamp()) // WINDOW_S


def day_date(day: int) -> date:
    return _EPOCH_DAY + timedelta(days=day)


def seconds_to_reset(now: datetime) -> int:
    """Whole seconds until the next 00:00 UTC (1 to 86400)."""
    return WINDOW_S - int(now.timestamp()) % WINDOW_S


@dataclass(frozen=True, slots=True)
class QuotaState:
    """A render's answer: `admitted`, the renders `remaining` today after it (0 when
    refused), the day's `limit` and `reset_s`, seconds until 00:00 UTC."""

    admitted: bool
    remaining: int
    limit: int
    reset_s: int


class RenderQuota:
    """Per-(key, UTC day) render counts: this process's own, and the others' latest."""

    def __init__(self, limit: int = RENDER_LIMIT, process_id: str | None = None) -> None:
        self.limit = limit
        self.process_id = process_id or f"p{uuid.uuid4().hex[:16]}"
        self._lock = threading.Lock()
        self._own: dict[tuple[str, int], int] = {}
        self._others: dict[tuple[str, int], dict[str, int]] = {}
        self._others_sum: dict[tuple[str, int], int] = {}
        self._dirty: set[tuple[str, int]] = set()

    def admit(self, key_id: str, now: datetime) -> QuotaState:
        """Count one render of `key_id` if the day's quota allows it."""
        slot = (key_id, utc_day(now))
        reset_s = seconds_to_reset(now)
        with self._lock:
            own = self._own.get(slot, 0)
            used = own + self._others_sum.get(slot, 0)
            if used >= self.limit:
                return QuotaState(False, 0, self.limit, reset_s)
            self._own[slot] = own + 1
            self._dirty.add(slot)
        return QuotaState(True, self.limit - used - 1, self.limit, reset_s)

    def used(self, key_id: str, now: datetime) -> int:
        """Renders of the key counted today (own and others' latest)."""
        slot = (key_id, utc_day(now))
        with self._lock:
            return self._own.get(slot, 0) + self._others_sum.get(slot, 0)

    # -- sharing ---------------------------------------------------------------------

    def take_changes(self) -> list[tuple[str, int, int]]:
        """(key_id, day, own count) of every slot changed since the last call."""
        with self._lock:
            changes = [(key, day, self._own[(key, day)]) for key, day in self._dirty]
            self._dirty.clear()
        return changes

    def merge(self, process_id: str, key_id: str, day: int, count: int) -> None:
        """Another process's count (the larger of two counts of one process wins: a
        count only grows during its day)."""
        if process_id == self.process_id:
            return
        slot = (key_id, day)
        with self._lock:
            counts = self._others.setdefault(slot, {})
            before = counts.get(process_id, 0)
            if count > before:
                counts[process_id] = count
                self._others_sum[slot] = self._others_sum.get(slot, 0) + count - before

    def forget_before(self, day: int) -> None:
        """Drop the counts of days before `day`."""
        with self._lock:
            for table in (self._own, self._others, self._others_sum):
                for slot in [s for s in table if s[1] < day]:
                    del table[slot]
            self._dirty = {s for s in self._dirty if s[1] >= day}


@dataclass(frozen=True)
class SharingConfig:
    bootstrap_servers: str
    topic: str
    interval_s: float = 0.1
    fetch_wait_ms: int = 50
    client_id: str = "keypulse-render-counts"


class RenderCountSharing:
    """Publishes this process's render counts and applies the other processes'."""

    def __init__(self, quota: RenderQuota, config: SharingConfig) -> None:
        self.quota = quota
        self.config = config
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ends: dict[int, int] = {}
        self._next: dict[int, int] = {}

    def start(self) -> RenderCountSharing:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="render-counts", daemon=True)
            self._thread.start()
        return self

    @property
    def caught_up(self) -> bool:
        """Today's counts of the other processes have been read once."""
        return self._caught_up.is_set()

    @property
    def failure(self) -> BaseException | None:
        """Why the sharing thread stopped (None: it runs)."""
        return self._failure

    def wait_caught_up(self, timeout: float) -> bool:
        return self._caught_up.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        from confluent_kafka import Consumer, Producer

        cfg = self.config
        common = {
            "bootstrap.servers": cfg.bootstrap_servers,
            "client.id": cfg.client_id,
            "log_level": 3,
            "logger": log,
        }
        producer = Producer({**common, "linger.ms": 5, "acks": "all"})
        consumer = Consumer(
            {
                **common,
                "group.id": f"{cfg.client_id}-{self.quota.process_id}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": cfg.fetch_wait_ms,
                "fetch.error.backoff.ms": 100,
            }
        )
        try:
            self._assign_from_today(consumer)
            next_publish = 0.0
            while not self._stop.is_set():
                for message in consumer.consume(1000, cfg.interval_s / 2):
                    partition, offset = message.partition(), message.offset()
                    if message.error() is None and partition is not None and offset is not None:
                        self._next[partition] = offset + 1
                        self._apply(message.value())
                if not self._caught_up.is_set() and all(
                    self._next[p] >= end for p, end in self._ends.items()
                ):
                    self._caught_up.set()
                now = time.monotonic()
                if now >= next_publish:
                    self._publish(producer)
                    next_publish = now + cfg.interval_s
            self._publish(producer)
            producer.flush(5)
        except Exception as exc:  # reported; render checks refuse (NotReady)
            log.error("render-count sharing stopped: %r", exc)
            self._failure = exc
        finally:
            consumer.close()

    def _assign_from_today(self, consumer: Any) -> None:
        from confluent_kafka import TopicPartition

        topic = self.config.topic
        deadline = time.monotonic() + 30
        while True:
            meta = consumer.list_topics(topic, timeout=5)
            found = meta.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} does not exist; run `keypulse topics ensure`")
            self._stop.wait(0.2)
        today_ms = utc_day(datetime.now(UTC)) * WINDOW_S * 1000
        wanted = [TopicPartition(topic, p, today_ms) for p in sorted(found.partitions)]
        starts = consumer.offsets_for_times(wanted, timeout=10)
        for tp in starts:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), 10)
            self._ends[tp.partition] = int(high)
            if tp.offset < 0:  # nothing since 00:00 UTC
                tp.offset = int(high)
            self._next[tp.partition] = tp.offset
        consumer.assign(starts)

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            record = decode_render_count(value)
        except InvalidMessage:
            return
        day = (record.day - _EPOCH_DAY).days
        self.quota.merge(record.process_id, record.key_id, day, record.count)

    def _publish(self, producer: Any) -> None:
        changes = self.quota.take_changes()
        if changes:
            at = datetime.now(UTC)
            for key_id, day, count in changes:
                record = RenderCount(
                    process_id=self.quota.process_id,
                    key_id=key_id,
                    day=day_date(day),
                    count=count,
                    at=at,
                )
                producer.produce(self.config.topic, encode_render_count(record), key=key_id)
            self.quota.forget_before(utc_day(at) - 1)
        producer.poll(0)
