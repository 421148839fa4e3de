"""Helpers for the producer's Kafka tests: read a topic to its end and count events."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from schemas.codec import decode_requests

EVENT: dict[str, Any] = {
    "key_id": "key_abc123",
    "account_id": "acc_7Hq2x",
    "method": "POST",
    "route": "/v1/render",
    "status": 200,
    "latency_ms": 84.5,
    "client_ip": "203.0.113.7",
    "bytes_out": 1024,
    "is_render": True,
}


@dataclass(frozen=True)
class TopicCount:
    records: int
    events: int
    event_ids: Counter[str]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.event_ids.values() if n > 1)


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record of `topic` up to its current end offsets (all partitions)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 << 20,  # dead letters may hold an oversize record
        fetch_max_bytes=64 << 20,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for messages in consumer.poll(timeout_ms=500).values():
                records.extend(messages)
        return records
    finally:
        consumer.close()


def count_request_events(bootstrap: str, topic: str, timeout_s: float = 30.0) -> TopicCount:
    """Decode every record of `topic` up to its current end offsets."""
    records = read_topic(bootstrap, topic, timeout_s)
    ids: Counter[str] = Counter()
    events = 0
    for record in records:
        decoded = decode_requests(record.value)
        events += decoded.count
        ids.update(decoded.columns["event_id"])
    return TopicCount(records=len(records), events=events, event_ids=ids)


class SteadyRecorder:
    """Calls `record()` at about `rate` events/s on a background thread until stopped."""

    def __init__(self, record: Any, rate: int) -> None:
        self._record = record
        self._rate = rate
        self._stop = threading.Event()
        self.calls = 0
        self.max_call_s = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self._rate)
            while self.calls < due:
                t0 = time.perf_counter()
                self._record(**EVENT)
                self.max_call_s = max(self.max_call_s, time.perf_counter() - t0)
                self.calls += 1
            time.sleep(0.002)

    def __enter__(self) -> SteadyRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
