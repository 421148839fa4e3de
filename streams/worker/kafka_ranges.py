"""The one reader of exact offset ranges from Kafka: crash recovery re-reads the newest
recorded insert, `keypulse replay` reads whole topics.

Blocking (kafka-python): run it in an executor or a tool. A range is inclusive at both
ends. Records a range names that Kafka no longer holds (deleted by retention, or past
the end of the partition) raise `RangeGone` instead of being skipped silently; a read
that makes no progress for `idle_timeout_s` raises `RangeReadTimeout` (transient).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streams.worker.ingest_plan import SourceRecord
from streams.worker.ports import OffsetRange

MAX_FETCH_BYTES = 64 * 1024 * 1024


class RangeReadTimeout(Exception):
    """Kafka returned nothing new for a while before the ranges were read (transient)."""


class RangeGone(Exception):
    """Part of a range is not in Kafka (anymore): it cannot be read back."""


def _consumer(bootstrap_servers: str, client_id: str) -> Any:
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        client_id=client_id,
        auto_offset_reset="none",
        allow_auto_create_topics=False,
        max_poll_records=2000,
        fetch_max_bytes=MAX_FETCH_BYTES,
        max_partition_fetch_bytes=MAX_FETCH_BYTES,
    )


def topic_ranges(bootstrap_servers: str, topic: str) -> list[OffsetRange]:
    """The range of every non-empty partition of `topic`, from its first record to the
    last one written now, in partition order."""
    consumer = _consumer(bootstrap_servers, "keypulse-ranges")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        return [
            OffsetRange(tp.partition, begin[tp], end[tp] - 1) for tp in tps if end[tp] > begin[tp]
        ]
    finally:
        consumer.close()


def _check_held(consumer: Any, topic: str, wanted: dict[int, OffsetRange]) -> None:
    tps = [TopicPartition(topic, p) for p in sorted(wanted)]
    begin = consumer.beginning_offsets(tps)
    end = consumer.end_offsets(tps)
    for tp in tps:
        span = wanted[tp.partition]
        if span.start < begin[tp] or span.end >= end[tp]:
            raise RangeGone(
                f"{topic}[{tp.partition}] offsets {span.start}..{span.end} are not all in "
                f"Kafka (it holds {begin[tp]}..{end[tp] - 1}): deleted by retention, or the "
                "topic was recreated"
            )


def timestamp_ms(message: Any) -> int | None:
    """A kafka-python record's timestamp in epoch milliseconds (None when it has none)."""
    ts = message.timestamp
    return int(ts) if ts is not None and ts >= 0 else None


class _Cursor:
    """Which partitions still have records to deliver, and the records of one poll."""

    def __init__(self, consumer: Any, topic: str, wanted: dict[int, OffsetRange]) -> None:
        self.consumer = consumer
        self.topic = topic
        self.wanted = wanted
        self.open = set(wanted)

    def take(self, polled: dict[Any, list[Any]]) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        for tp, messages in polled.items():
            span = self.wanted[tp.partition]
            out.extend(
                SourceRecord(tp.partition, m.offset, m.key, m.value or b"", timestamp_ms(m))
                for m in messages
                if span.start <= m.offset <= span.end
            )
        return out

    def close_finished(self) -> None:
        """Pause each partition whose position passed its range's end (also across gaps)."""
        for p in sorted(self.open):
            tp = TopicPartition(self.topic, p)
            if self.consumer.position(tp) > self.wanted[p].end:
                self.open.discard(p)
                self.consumer.pause(tp)


def iter_ranges(
    bootstrap_servers: str,
    topic: str,
    ranges: list[OffsetRange],
    idle_timeout_s: float = 60.0,
    client_id: str = "keypulse-ranges",
) -> Iterator[list[SourceRecord]]:
    """Chunks of the records of `ranges` (one partition's records in offset order)."""
    if not ranges:
        return
    wanted = {r.partition: r for r in ranges}
    consumer = _consumer(bootstrap_servers, client_id)
    try:
        _check_held(consumer, topic, wanted)
        consumer.assign([TopicPartition(topic, p) for p in sorted(wanted)])
        for p, span in wanted.items():
            consumer.seek(TopicPartition(topic, p), span.start)
        cursor = _Cursor(consumer, topic, wanted)
        deadline = time.monotonic() + idle_timeout_s
        while cursor.open:
            chunk = cursor.take(consumer.poll(timeout_ms=500))
            cursor.close_finished()
            if chunk:
                deadline = time.monotonic() + idle_timeout_s
                yield chunk
            elif time.monotonic() > deadline:
                raise RangeReadTimeout(
                    f"no record of {topic} ranges {ranges} arrived for {idle_timeout_s:g}s"
                )
    finally:
        consumer.close()


def read_ranges(
    bootstrap_servers: str, topic: str, ranges: list[OffsetRange], idle_timeout_s: float = 60.0
) -> list[SourceRecord]:
    """Every record of `ranges`, in partition then offset order."""
    chunks = iter_ranges(bootstrap_servers, topic, ranges, idle_timeout_s, "keypulse-recovery")
    return sorted((r for chunk in chunks for r in chunk), key=lambda r: (r.partition, r.offset))
