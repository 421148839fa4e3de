"""Produced with kafka-python, consumed by the agents that `build_app` makes, in ClickHouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaProducer

from infra.clickhouse import make_client
from infra.wiring import running_worker
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.ingest_helpers import worker_settings
from tests.integration.producer_support import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def _event(i: int) -> RequestCompleted:
    return RequestCompleted(
        key_id="key_roundtrip1",
        account_id="acc_roundtrip",
        method="GET",
        route="/v1/things",
        status=500 if i % 4 == 0 else 200,
        latency_ms=float(i),
        client_ip="2001:db8::1" if i % 2 else "192.0.2.7",
    )


async def test_kafka_python_to_faust_agent_to_clickhouse(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", compression_type="lz4")
    try:
        batch = RequestBatch.from_events([_event(i) for i in range(100)])
        producer.send(topics.requests, encode(batch)).get(timeout=30)
        producer.send(topics.requests, encode(_event(100))).get(timeout=30)
        producer.send(topics.requests, b"{not json").get(timeout=30)
    finally:
        producer.close()

    async with running_worker(settings) as worker:
        ingest = worker.app.ingest
        assert ingest is not None
        await eventually(
            lambda: ingest.stats.events >= 101 and ingest.stats.dead_letters >= 1,
            timeout_s=60,
            what="101 events and 1 dead letter",
        )
        assert ingest.stats.events == 101
        assert ingest.stats.dead_letters == 1

    client = make_client(settings)
    try:
        raw = client.query("SELECT count(), uniqExact(event_id) FROM requests_raw").result_rows
        assert raw == [(101, 101)]
        minute = client.query(
            "SELECT sum(requests), sum(errors_5xx) FROM usage_rollup WHERE tier = 'minute'"
        ).result_rows
        assert minute == [(101, 26)]
    finally:
        client.close()

    dead = read_topic(kafka_bootstrap, topics.dead_letters)  # acknowledged before counted
    assert len(dead) == 1
    assert dead[0].value == b"{not json"
    headers = dict(dead[0].headers)
    assert headers["keypulse-reason"] == b"not_json"
    assert headers["keypulse-source-topic"] == topics.requests.encode()
