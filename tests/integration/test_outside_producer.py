"""A producer in another language, as docs/events.md describes it: raw JSON records sent
with a plain Kafka client (kafka-python's producer, gzip), none of keypulse's models or
library. The exact counts come back over the HTTP API; the bad records and rows come back
from the dead-letter topic with their reasons."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.http.api_support import ALPHA, Api, serving, serving_settings
from tests.integration.ingest_helpers import read_all, worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

KEYS = ["key_outside01", "key_outside02"]


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(kind: str, at: datetime) -> dict[str, Any]:
    return {
        "type": kind,
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": _rfc3339(at),
    }


def _single(key: str, at: datetime, status: int) -> dict[str, Any]:
    return {
        **_envelope("request.completed", at),
        "key_id": key,
        "account_id": ALPHA,
        "method": "GET",
        "route": "/v1/render",
        "status": status,
        "latency_ms": 12.5,
        "client_ip": "203.0.113.7",
        "bytes_out": 512,
        "is_render": True,
    }


def _batch(rows: list[dict[str, Any]], at: datetime) -> dict[str, Any]:
    names = ["event_id", "occurred_at_ms", "key_id", "account_id", "method", "route"]
    names += ["status", "latency_ms", "client_ip", "bytes_out", "is_render", "watermarked"]
    return {
        **_envelope("request.batch", at),
        "batch_id": str(uuid.uuid4()),
        "columns": {name: [row[name] for row in rows] for name in names},
    }


def _row(key: str, at: datetime, status: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at_ms": int((at - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000),
        "key_id": key,
        "account_id": ALPHA,
        "method": "POST",
        "route": "/v1/templates/{id}",
        "status": status,
        "latency_ms": 40,
        "client_ip": "2001:db8::7",
        "bytes_out": 0,
        "is_render": False,
        "watermarked": False,
    }


def _key_chain(keys: list[str], at: datetime) -> list[dict[str, Any]]:
    """ALPHA's history as the docs describe it: `account.created` (seq 1, prev null), then
    one `key.created` per key, each with the next `seq` and the previous event's id."""
    chain = [{**_envelope("account.created", at), "account_id": ALPHA, "plan": "pro"}]
    for i, key in enumerate(keys):
        chain.append(
            {
                **_envelope("key.created", at),
                "account_id": ALPHA,
                "key_id": key,
                "name": f"outside {key}",
                "key_type": "live",
                "access": "full",
                "secret_hash": "sha256:" + hashlib.sha256(key.encode()).hexdigest(),
                "hint": f"pk_live_Out{i}",
            }
        )
    for seq, event in enumerate(chain, start=1):
        event["seq"] = seq
        event["prev"] = chain[seq - 2]["event_id"] if seq > 1 else None
    return chain


def _send(bootstrap: str, topic: str, records: list[tuple[bytes | None, dict[str, Any]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    try:
        for key, value in records:
            producer.send(topic, json.dumps(value).encode(), key=key)
        producer.flush(timeout=60)
    finally:
        producer.close()


async def test_records_built_from_the_docs_are_counted_exactly(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=30)
    good: list[tuple[str, int]] = []  # (key, status) of every event that must count
    requests: list[tuple[bytes | None, dict[str, Any]]] = []
    for i in range(40):
        key, status = KEYS[i % 2], 500 if i % 8 == 0 else 200
        requests.append((key.encode(), _single(key, recent, status)))
        good.append((key, status))
    for b in range(3):
        rows = [_row(KEYS[(b + r) % 2], recent, 404 if r % 5 == 0 else 201) for r in range(250)]
        requests.append((None, _batch(rows, recent)))
        good += [(row["key_id"], row["status"]) for row in rows]
    bad_rows = [_row(KEYS[0], recent, 200) for _ in range(3)]
    bad_rows[0]["status"] = "200"  # a string for a number
    bad_rows[1]["client_ip"] = "fe80::1%eth0"  # a zone id
    bad_rows[2]["occurred_at_ms"] += 3_600_000 * 24 * 365  # a year in the future
    mixed = [_row(KEYS[1], recent, 200) for _ in range(10)]
    good += [(row["key_id"], row["status"]) for row in mixed]
    batch = _batch(
        [*mixed[:4], bad_rows[0], *mixed[4:7], bad_rows[1], bad_rows[2], *mixed[7:]], now
    )
    requests.append((None, batch))
    missing_id = _single(KEYS[0], recent, 200)
    del missing_id["event_id"]
    far_future = _single(KEYS[0], now + timedelta(days=3000), 200)
    boolean_status = _single(KEYS[1], recent, 200) | {"is_render": 1}
    requests += [(None, missing_id), (None, far_future), (None, boolean_status)]
    expected_dead = {
        (None, "schema_violation"): 2,  # the missing event_id, is_render = 1
        (None, "future_timestamp"): 1,
        ("4", "schema_violation"): 1,
        ("8", "schema_violation"): 1,
        ("9", "future_timestamp"): 1,
    }

    _send(kafka_bootstrap, topics.key_events, [(ALPHA.encode(), e) for e in _key_chain(KEYS, now)])
    _send(kafka_bootstrap, topics.requests, requests)

    settings = serving_settings(worker_settings(tmp_path, kafka_bootstrap, topic_prefix))
    async with serving(settings) as api:
        dead = await eventually(
            lambda: _dead_letters(kafka_bootstrap, topics, sum(expected_dead.values())),
            60,
            "the dead letters",
        )
        assert Counter(dead) == Counter(expected_dead)
        truth = Counter(key for key, _ in good)
        errors = Counter(key for key, status in good if status >= 400)
        for key in KEYS:
            usage = await eventually(functools.partial(_usage_when, api, key, truth[key]), 60, key)
            assert usage is not None
            assert usage["requests"] == truth[key]
            assert usage["errors_4xx"] + usage["errors_5xx"] == errors[key]
        total = (await api.client.get("/usage?window=24h", headers=api.auth("alpha_full"))).json()
        assert total["total"]["requests"] == sum(truth.values())


def _dead_letters(
    bootstrap: str, topics: TopicNames, expected: int
) -> list[tuple[str | None, str]]:
    records = read_all(bootstrap, topics.dead_letters)
    if len(records) < expected:
        return []
    pairs = []
    for _, headers in records:
        index = headers.get("keypulse-batch-index")
        pairs.append((index.decode() if index else None, headers["keypulse-reason"].decode()))
    return pairs


async def _usage_when(api: Api, key: str, requests: int) -> dict[str, Any] | None:
    response = await api.client.get(
        f"/api-keys/{key}/usage?window=24h", headers=api.auth("alpha_full")
    )
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body if body["requests"] >= requests else None
