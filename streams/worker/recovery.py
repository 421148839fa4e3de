"""Re-reading exact offset ranges from Kafka (crash recovery of the newest insert)."""

from __future__ import annotations

import time

from streams.worker.ingest_plan import SourceRecord
from streams.worker.ports import OffsetRange


class RecoveryError(Exception):
    """The ranges to recover could not be read back from Kafka."""


def read_ranges(
    bootstrap_servers: str,
    topic: str,
    ranges: list[OffsetRange],
    timeout_s: float = 60.0,
    max_fetch_bytes: int = 64 * 1024 * 1024,
) -> list[SourceRecord]:
    """Every record of `ranges` (inclusive), in partition then offset order.

    Blocking (kafka-python); run it in an executor. Records deleted by retention are
    reported as an error rather than silently skipped.
    """
    if not ranges:
        return []
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        client_id="keypulse-recovery",
        fetch_max_bytes=max_fetch_bytes,
        max_partition_fetch_bytes=max_fetch_bytes,
    )
    try:
        wanted = {r.partition: r for r in ranges}
        tps = [TopicPartition(topic, p) for p in sorted(wanted)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, wanted[tp.partition].start)
        out: dict[int, list[SourceRecord]] = {p: [] for p in wanted}
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(wanted):
            if time.monotonic() > deadline:
                raise RecoveryError(f"timed out re-reading {topic} ranges {ranges}")
            polled = consumer.poll(timeout_ms=500)
            for tp, messages in polled.items():
                span = wanted[tp.partition]
                for m in messages:
                    if m.offset > span.end:
                        done.add(tp.partition)
                        break
                    if m.offset >= span.start:
                        value = m.value if m.value is not None else b""
                        out[tp.partition].append(SourceRecord(tp.partition, m.offset, m.key, value))
                    if m.offset >= span.end:
                        done.add(tp.partition)
                        break
                if tp.partition in done:
                    consumer.pause(tp)
            for p, span in wanted.items():
                if p not in done and consumer.position(TopicPartition(topic, p)) > span.end:
                    done.add(p)
        return [rec for p in sorted(out) for rec in out[p]]
    finally:
        consumer.close()
