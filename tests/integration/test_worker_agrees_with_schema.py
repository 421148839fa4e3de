"""The real worker decides like the exported JSON Schema: every near-miss of a valid
`request.completed` (each field dropped, mistyped, just off its rule, or an unknown field
added), sent as a single record and as a batch of one, is either counted or
dead-lettered, exactly as the schema (plus the documented time bounds) says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from infra.wiring import running_worker
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.ingest_helpers import read_all, worker_settings
from tests.unit.schemas.test_schemas_agree import (
    _batch_of_one,
    _fields,
    _schema_accepts_request,
    mutations,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

MAX_FUTURE = timedelta(seconds=300)  # KEYPULSE_WORKER_MAX_FUTURE_S's default
MAX_AGE = timedelta(days=35)  # KEYPULSE_CLICKHOUSE_RAW_TTL_DAYS's default
SLACK = timedelta(minutes=2)  # between the test's clock and the records' timestamps


@dataclass(frozen=True)
class Case:
    value: bytes
    counted: bool  # what the schema and the time bounds say
    undecided: bool  # within SLACK of a time bound: either verdict is right


def _base(now: datetime) -> dict[str, Any]:
    return {
        "type": "request.completed",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": (now - timedelta(minutes=10)).isoformat(timespec="milliseconds"),
        "key_id": "key_agree0001",
        "account_id": "acc_agree",
        "method": "GET",
        "route": "/v1/render",
        "status": 200,
        "latency_ms": 12.5,
        "client_ip": "203.0.113.7",
        "bytes_out": 10,
        "is_render": False,
        "watermarked": False,
    }


def _occurred(obj: dict[str, Any]) -> datetime:
    """The event's time: a single's `occurred_at`, a batch row's `occurred_at_ms`."""
    if obj["type"] == "request.completed":
        return datetime.fromisoformat(str(obj["occurred_at"]).upper())
    ms = obj["columns"]["occurred_at_ms"][0]
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _case(obj: dict[str, Any], now: datetime) -> Case | None:
    try:
        value = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return None  # not something a Kafka record can carry
    loaded = orjson.loads(value)
    if not _schema_accepts_request(loaded):
        return Case(value, counted=False, undecided=False)
    at = _occurred(loaded)
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    undecided = abs(at - earliest) < SLACK or abs(at - latest) < SLACK
    return Case(value, counted=earliest <= at <= latest, undecided=undecided)


def _corpus(now: datetime) -> list[Case]:
    cases: list[Case] = []
    for name in _fields(RequestCompleted):
        for variant in mutations(RequestCompleted, _base(now), name):
            for envelope in (variant, _batch_of_one(variant)):
                obj = dict(envelope)
                if "event_id" in obj and name != "event_id":
                    obj["event_id"] = str(uuid.uuid4())  # distinct rows, not duplicates
                if "columns" in obj and name != "event_id":
                    obj["columns"]["event_id"] = [str(uuid.uuid4())]
                case = _case(obj, now)
                if case is not None and not case.undecided:
                    cases.append(case)
    return cases


async def test_each_near_miss_is_counted_or_dead_lettered_as_the_schema_says(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    cases = _corpus(datetime.now(UTC))
    expected_counted = sum(c.counted for c in cases)
    assert expected_counted >= 20 and len(cases) - expected_counted >= 100  # a real mix
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        sent = [producer.send(topics.requests, c.value, partition=0) for c in cases]
        producer.flush(timeout=60)
        offsets = [future.get(timeout=30).offset for future in sent]
    finally:
        producer.close()
    by_offset = dict(zip(offsets, cases, strict=True))

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        ingest = worker.app.ingest
        assert ingest is not None
        await eventually(
            lambda: ingest.watermarks.get(0, -1) >= max(offsets), 90, "every record consumed"
        )
        counted = ingest.stats.events
    dead = read_all(kafka_bootstrap, topics.dead_letters)
    dead_offsets = [int(headers["keypulse-source-offset"]) for _, headers in dead]
    assert len(dead_offsets) == len(set(dead_offsets))  # one dead letter per record
    wrong = [
        (by_offset[o].value[:200], by_offset[o].counted)
        for o in offsets
        if (o in set(dead_offsets)) == by_offset[o].counted
    ]
    assert not wrong, f"{len(wrong)} records decided unlike the schema, e.g. {wrong[:3]}"
    assert counted == expected_counted
    assert len(dead_offsets) == len(cases) - expected_counted
