"""The broker stops and restarts during ingest: exact counts after recovery."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from infra.clickhouse import make_client
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import LocalKafka
from infra.settings import KafkaSettings
from infra.wiring import running_worker
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings

# A broker of its own stopped and started again: `make test-faults` (the test budget of
# `make test` keeps the SIGKILL loop and leaves the broker restarts to the fault run).
pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

BOOTSTRAP = "127.0.0.1:29392"


def _events(rng: random.Random, n: int) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            key_id=f"key_restart{rng.randint(0, 9)}",
            account_id="acc_restart",
            method="GET",
            route="/v1/restart",
            status=rng.choice([200, 500]),
            latency_ms=rng.uniform(0, 20),
            client_ip="192.0.2.44",
        )
        for _ in range(n)
    ]


async def test_broker_restart_during_ingest(tmp_path: Path) -> None:
    broker = LocalKafka(
        KafkaSettings(bootstrap_servers=BOOTSTRAP, controller_port=29393), tmp_path / "kafka"
    )
    broker.start()
    try:
        prefix = "restart."
        ensure_topics(BOOTSTRAP, prefix)
        topics = TopicNames.with_prefix(prefix)
        rng = random.Random(9)
        first, second = _events(rng, 8000), _events(rng, 8000)
        settings = worker_settings(tmp_path / "data", BOOTSTRAP, prefix)
        produce(BOOTSTRAP, topics.requests, batches(first, 400))
        async with running_worker(settings) as worker:
            await wait_for_events(worker, len(first))
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(2)
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(produce, BOOTSTRAP, topics.requests, batches(second, 400))
            await wait_for_events(worker, len(first) + len(second), timeout_s=120)
        client = make_client(settings)
        try:
            total = len(first) + len(second)
            assert client.query(
                "SELECT count(), uniqExact(event_id) FROM requests_raw"
            ).result_rows == [(total, total)]
            assert client.query(
                "SELECT tier, sum(requests) FROM usage_rollup GROUP BY tier ORDER BY tier"
            ).result_rows == [("minute", total), ("hour", total), ("day", total)]
            assert client.query("SELECT sum(requests) FROM key_last_used").result_rows == [(total,)]
        finally:
            client.close()
    finally:
        broker.stop()
