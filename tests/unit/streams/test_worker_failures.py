"""`streams.worker.failures`: which Kafka failures the agents retry."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from kafka.errors import KafkaTimeoutError as SyncKafkaTimeoutError

from streams.worker.failures import kafka_transient
from streams.worker.kafka_ranges import RangeGone, RangeReadTimeout


def test_kafka_outages_are_transient() -> None:
    assert kafka_transient(KafkaTimeoutError())
    assert kafka_transient(KafkaConnectionError())
    assert kafka_transient(SyncKafkaTimeoutError())
    assert kafka_transient(RangeReadTimeout("no record arrived"))
    assert kafka_transient(TimeoutError())


def test_missing_records_and_bugs_are_not() -> None:
    assert not kafka_transient(RangeGone("deleted by retention"))
    assert not kafka_transient(TypeError("bad"))
