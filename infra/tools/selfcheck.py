"""`keypulse up --check`: push a small batch through Kafka and the worker, and count it."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console

from infra.settings import Settings
from infra.wiring import running_worker
from schemas.codec import encode
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames

SELFCHECK_ACCOUNT = "acc_selfcheck"
SELFCHECK_KEY = "key_selfcheck"


def _produce(settings: Settings, events: int) -> None:
    from kafka import KafkaProducer

    names = TopicNames.with_prefix(settings.kafka.topic_prefix)
    batch = RequestBatch.from_events(
        [
            RequestCompleted(
                key_id=SELFCHECK_KEY,
                account_id=SELFCHECK_ACCOUNT,
                method="GET",
                route="/selfcheck",
                status=200 if i % 10 else 500,
                latency_ms=float(i % 50),
                client_ip="127.0.0.1",
            )
            for i in range(events)
        ]
    )
    created = KeyCreated(
        key_id=SELFCHECK_KEY,
        account_id=SELFCHECK_ACCOUNT,
        name="self-check",
        key_type=KeyType.TEST,
        secret_hash="sha256:" + "0" * 64,
        plan=Plan.FREE,
        actor="selfcheck",
    )
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    try:
        producer.send(names.key_events, encode(created), key=SELFCHECK_ACCOUNT.encode()).get(30)
        producer.send(names.requests, encode(batch)).get(timeout=30)
    finally:
        producer.close()


async def _check(settings: Settings, console: Console, events: int, timeout_s: float) -> None:
    began = time.monotonic()
    async with running_worker(settings) as worker:
        ingest = worker.app.ingest
        assert ingest is not None
        before = ingest.stats.events
        await asyncio.to_thread(_produce, settings, events)
        while ingest.stats.events - before < events:
            if time.monotonic() - began > timeout_s:
                raise TimeoutError(f"self-check: only {ingest.stats.events - before} of {events}")
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
    console.print(
        f"self-check ok: {events} events produced, consumed by the ingest agent and "
        f"written to ClickHouse in {elapsed:.1f} s"
    )


def run_selfcheck(
    settings: Settings, console: Console, events: int = 1000, timeout_s: float = 60
) -> None:
    asyncio.run(_check(settings, console, events, timeout_s))
