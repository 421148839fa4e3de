"""`streams.worker.kafka_ranges` on the real broker: exact ranges, whole topics, and
records Kafka no longer holds."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

from schemas.topics import TopicNames
from streams.worker.ingest_plan import SourceRecord
from streams.worker.kafka_ranges import RangeGone, iter_ranges, read_ranges, topic_ranges
from streams.worker.ports import OffsetRange

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4")
    try:
        for partition, count in per_partition.items():
            for offset in range(count):
                producer.send(topic, f"{partition}:{offset}".encode(), partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _values(records: list[SourceRecord]) -> list[tuple[int, int, bytes]]:
    return [(r.partition, r.offset, r.value) for r in records]


def test_read_ranges_returns_exactly_the_ranges(kafka_bootstrap: str, topics: TopicNames) -> None:
    _produce(kafka_bootstrap, topics.requests, {0: 20, 1: 5})
    ranges = [OffsetRange(0, 3, 7), OffsetRange(1, 4, 4)]
    got = _values(read_ranges(kafka_bootstrap, topics.requests, ranges))
    expected = [(0, o, f"0:{o}".encode()) for o in range(3, 8)] + [(1, 4, b"1:4")]
    assert got == expected


def test_a_whole_topic_reads_every_record_once(kafka_bootstrap: str, topics: TopicNames) -> None:
    _produce(kafka_bootstrap, topics.requests, {0: 700, 1: 1, 2: 0})
    ranges = topic_ranges(kafka_bootstrap, topics.requests)
    assert ranges == [OffsetRange(0, 0, 699), OffsetRange(1, 0, 0)]
    records = [r for chunk in iter_ranges(kafka_bootstrap, topics.requests, ranges) for r in chunk]
    assert sorted((r.partition, r.offset) for r in records) == [(0, o) for o in range(700)] + [
        (1, 0)
    ]


def test_records_past_the_end_or_deleted_raise_range_gone(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    _produce(kafka_bootstrap, topics.requests, {0: 10})
    with pytest.raises(RangeGone, match="not all in Kafka"):
        read_ranges(kafka_bootstrap, topics.requests, [OffsetRange(0, 8, 12)])
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_records({TopicPartition(topics.requests, 0): 6})  # as retention would
    finally:
        admin.close()
    with pytest.raises(RangeGone, match=r"holds 6\.\.9"):
        read_ranges(kafka_bootstrap, topics.requests, [OffsetRange(0, 2, 7)])
    assert [
        r.offset for r in read_ranges(kafka_bootstrap, topics.requests, [OffsetRange(0, 6, 9)])
    ] == [
        6,
        7,
        8,
        9,
    ]


def test_records_carry_their_kafka_timestamps(kafka_bootstrap: str, topics: TopicNames) -> None:
    """Recovery and replay see the timestamp the broker holds, as the live consumer does."""
    stamps = [1_700_000_000_000 + 7 * i for i in range(5)]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for i, ts in enumerate(stamps):
            producer.send(topics.requests, f"t{i}".encode(), partition=0, timestamp_ms=ts)
        producer.flush(timeout=30)
    finally:
        producer.close()
    records = read_ranges(kafka_bootstrap, topics.requests, [OffsetRange(0, 0, 4)])
    assert [(r.offset, r.timestamp_ms) for r in records] == list(enumerate(stamps))
