"""The producer library against the real broker: every recorded event arrives once."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.codec import decode_key_event
from schemas.keys import KeyEventModel, RevokeReason
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client import (
    KeyEventPublisher,
    PublisherConfig,
    PublishError,
    PublishResult,
    RecorderConfig,
    UsageRecorder,
)
from tests.integration.producer_support import EVENT, count_request_events
from tests.samples.keys import Chain

pytestmark = pytest.mark.kafka


def test_recorded_events_arrive_exactly_once(kafka_bootstrap: str, topics: TopicNames) -> None:
    n = 50_000
    with UsageRecorder(RecorderConfig(kafka_bootstrap, topics.requests)) as recorder:
        for i in range(n):
            recorder.record(**{**EVENT, "status": 200 + i % 300})
        assert recorder.flush(30)
        stats = recorder.stats()
    assert (stats.recorded, stats.sent, stats.dropped, stats.queued) == (n, n, 0, 0)
    counted = count_request_events(kafka_bootstrap, topics.requests)
    assert counted.events == n
    assert len(counted.event_ids) == n
    assert counted.records == stats.batches_sent


def test_many_threads_and_keys(kafka_bootstrap: str, topics: TopicNames, tmp_path: Path) -> None:
    recorder = UsageRecorder(
        RecorderConfig(kafka_bootstrap, topics.requests, spill_dir=tmp_path, max_batch_events=997)
    )

    def work(t: int) -> None:
        for i in range(10_000):
            recorder.record(**{**EVENT, "key_id": f"key_thread{t}{i % 5}"})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.flush(30)
    stats = recorder.close()
    assert (stats.sent, stats.dropped, stats.spilled) == (40_000, 0, 0)
    counted = count_request_events(kafka_bootstrap, topics.requests)
    assert (counted.events, len(counted.event_ids)) == (40_000, 40_000)
    assert not list(tmp_path.glob("spill-*"))


def test_close_drains_without_flush(kafka_bootstrap: str, topics: TopicNames) -> None:
    recorder = UsageRecorder(RecorderConfig(kafka_bootstrap, topics.requests, linger_ms=1000))
    for _ in range(123):
        recorder.record(**EVENT)
    stats = recorder.close(10)
    assert (stats.sent, stats.queued) == (123, 0)
    assert count_request_events(kafka_bootstrap, topics.requests).events == 123


def _lifecycle(account: str) -> list[KeyEventModel]:
    """An account's whole chain: created, one key created, renamed, revoked, deleted."""
    key = f"key_{account[4:]}01"
    chain = Chain(account, Plan.PRO)
    chain.create_key(key, "renderer")
    chain.rename(key, "renderer (eu)")
    chain.revoke(key, RevokeReason.COMPROMISED)
    chain.delete(key)
    return chain.events


def test_key_events_are_confirmed_keyed_and_ordered(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    publisher = KeyEventPublisher(PublisherConfig(kafka_bootstrap, topics.key_events))
    try:
        sent: list[tuple[PublishResult, KeyEventModel]] = []
        for account in ("acc_alpha", "acc_beta", "acc_gamma"):
            for event in _lifecycle(account):
                sent.append((publisher.publish(event, wait=True, timeout=10), event))
        pending = publisher.publish(_lifecycle("acc_delta")[0], wait=False)
        assert isinstance(pending, Future)
        assert pending.result(10).topic == topics.key_events
    finally:
        publisher.close()
    for account in ("acc_alpha", "acc_beta", "acc_gamma"):
        results = [r for r, e in sent if e.account_id == account]
        assert len({r.partition for r in results}) == 1
        assert [r.offset for r in results] == sorted(r.offset for r in results)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    try:
        for result, event in sent:
            tp = TopicPartition(result.topic, result.partition)
            consumer.assign([tp])
            consumer.seek(tp, result.offset)
            (message,) = consumer.poll(timeout_ms=5000, max_records=1)[tp]
            assert message.key == event.account_id.encode()
            assert decode_key_event(message.value) == event
    finally:
        consumer.close()


def test_publish_to_an_unreachable_broker_raises() -> None:
    with socket.socket() as silent:  # listens, never accepts: the bootstrap times out
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        host, port = silent.getsockname()
        publisher = KeyEventPublisher(
            PublisherConfig(f"{host}:{port}", "t.keypulse.key-events", connect_timeout_ms=300)
        )
        with pytest.raises(PublishError, match="unreachable"):
            publisher.publish(_lifecycle("acc_alpha")[0])
        publisher.close()
    with pytest.raises(PublishError, match="closed"):
        publisher.publish(_lifecycle("acc_alpha")[0])


def test_publish_rejects_other_models(kafka_bootstrap: str, topics: TopicNames) -> None:
    with (
        KeyEventPublisher(PublisherConfig(kafka_bootstrap, topics.key_events)) as publisher,
        pytest.raises(TypeError),
    ):
        publisher.publish(object())  # type: ignore[call-overload]
