"""Helpers for ingest tests: settings per test, producing raw records, waiting on the worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from infra.settings import Settings, load_settings
from infra.wiring import Worker
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from tests.integration.producer_support import read_topic


def worker_settings(
    tmp_path: Path,
    bootstrap: str,
    prefix: str,
    api: dict[str, Any] | None = None,
    alerting: dict[str, Any] | None = None,
    **worker: int,
) -> Settings:
    """Settings for a test worker (`api` and `alerting` override those sections)."""
    return load_settings(
        data_dir=tmp_path,
        kafka={
            "bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "consumer_group": f"{prefix}worker",
        },
        worker=worker,
        api=api or {},
        alerting=alerting or {},
    )


def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 << 20)
    try:
        futures = [producer.send(topic, value, key=key) for value in values]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()


def batches(events: list[RequestCompleted], size: int) -> list[bytes]:
    return [
        encode(RequestBatch.from_events(events[i : i + size])) for i in range(0, len(events), size)
    ]


async def wait_for_events(
    worker: Worker, events: int, dead: int = 0, timeout_s: float = 90
) -> None:
    ingest = worker.app.ingest
    assert ingest is not None
    deadline = time.monotonic() + timeout_s
    while ingest.stats.events < events or ingest.stats.dead_letters < dead:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {ingest.stats}")
        await asyncio.sleep(0.05)


def read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record of `topic` up to its current end offsets, as (value, headers). The
    worker counts a dead letter once the broker acknowledged it, and the API answers a
    key command once its event is on the topic: what the tests read is there by then."""
    return [(r.value, dict(r.headers)) for r in read_topic(bootstrap, topic)]
