"""`keypulse up --check`: push a small batch through Kafka and the worker, and count it.

The batch is recorded under the self-check account's test key, which the key service
creates on the first self-check (with the account) and every later one reuses.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console

from infra.settings import Settings
from infra.wiring import running_worker
from schemas.codec import encode
from schemas.key_ledger import KeyStatus
from schemas.keys import KeyType
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from streams.keyservice.commands import CreateAccount, CreateKey
from streams.keyservice.service import start_key_service

SELFCHECK_ACCOUNT = "acc_selfcheck"
SELFCHECK_KEY_NAME = "Self-check"
ACTOR = "selfcheck"


def _selfcheck_key(settings: Settings, topic: str) -> str:
    """The self-check account's active self-check key: the existing one, or a new one
    (the account too) through the key service. Its secret is not kept: the self-check
    records usage under the key id and never authenticates."""
    service = start_key_service(
        settings.kafka.bootstrap_servers, topic, client_id="keypulse-selfcheck"
    )
    try:
        ledger = service.follower.snapshot(SELFCHECK_ACCOUNT)
        if ledger is None:
            service.execute(CreateAccount(SELFCHECK_ACCOUNT, Plan.FREE), actor=ACTOR)
        else:
            for key in ledger.keys.values():
                if key.name == SELFCHECK_KEY_NAME and key.status is KeyStatus.ACTIVE:
                    return key.key_id
        command = CreateKey(SELFCHECK_ACCOUNT, SELFCHECK_KEY_NAME, KeyType.TEST)
        key_id = service.execute(command, actor=ACTOR).decision.key_id
        assert key_id is not None
        return key_id
    finally:
        service.close()


def _produce(settings: Settings, events: int) -> None:
    from kafka import KafkaProducer

    names = TopicNames.with_prefix(settings.kafka.topic_prefix)
    key_id = _selfcheck_key(settings, names.key_events)
    batch = RequestBatch.from_events(
        [
            RequestCompleted(
                key_id=key_id,
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
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    try:
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
