"""A far-future event through the real worker: it is dead-lettered (`future_timestamp`),
and freshness (`X-Data-Freshness-Seconds`, `Freshness.newest_event_age_s`, the key's last
use) stays correct, never negative, and keeps moving with new traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from infra.clickhouse import make_client
from infra.settings import Settings
from projections.queries import UsageQueries
from schemas.codec import encode
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.http.api_support import ALPHA, Api, serving, serving_settings
from tests.integration.ingest_helpers import produce, read_all, wait_for_events, worker_settings
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

KEY = "key_fresh0001"
FAR_FUTURE = datetime(2099, 12, 31, tzinfo=UTC)


def _event(at: datetime, i: int = 0) -> RequestCompleted:
    return RequestCompleted(
        occurred_at=at,
        key_id=KEY,
        account_id=ALPHA,
        method="GET",
        route="/v1/fresh",
        status=200,
        latency_ms=float(i % 50),
        client_ip="198.51.100.20",
    )


def _freshness(settings: Settings, topic: str) -> tuple[datetime | None, float | None]:
    client = make_client(settings)
    try:
        fresh = UsageQueries(client).freshness(topic, datetime.now(UTC))
        return fresh.newest_event_at, fresh.newest_event_age_s
    finally:
        client.close()


async def _header_age(api: Api) -> float:
    response = await api.client.get("/api-keys", headers=api.auth("alpha_full"))
    assert response.status_code == 200, response.text
    return float(response.headers["X-Data-Freshness-Seconds"])


async def _last_used(client: httpx.AsyncClient, api: Api) -> datetime | None:
    response = await client.get(f"/api-keys/{KEY}", headers=api.auth("alpha_full"))
    assert response.status_code == 200, response.text
    value = response.json()["last_used_at"]
    return datetime.fromisoformat(value) if value else None


async def test_a_far_future_event_leaves_freshness_correct(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    produced_at = datetime.now(UTC)
    ten_minutes_ago = produced_at - timedelta(minutes=10)
    first = [_event(ten_minutes_ago + timedelta(milliseconds=i), i) for i in range(300)]
    far_single = encode(_event(FAR_FUTURE))
    far_row = _event(FAR_FUTURE, 7)
    mixed = [*first[:150], far_row, *first[150:]]
    chain = Chain(ALPHA, Plan.PRO)
    chain.create_key(KEY, "fresh")
    publish(kafka_bootstrap, topics.key_events, chain.events)
    produce(kafka_bootstrap, topics.requests, [far_single, encode(RequestBatch.from_events(mixed))])

    settings = serving_settings(worker_settings(tmp_path, kafka_bootstrap, topic_prefix))
    async with serving(settings) as api:
        await wait_for_events(api.worker, len(first), dead=2)
        ingest = api.worker.app.ingest
        assert ingest is not None
        assert (ingest.stats.events, ingest.stats.dead_letters) == (len(first), 2)

        dead = read_all(kafka_bootstrap, topics.dead_letters)
        by_index = {h.get("keypulse-batch-index"): (v, h) for v, h in dead}
        assert sorted(by_index, key=str) == sorted([None, b"150"], key=str)
        single_value, single_headers = by_index[None]
        assert single_value == far_single  # a single event is dead-lettered as it was
        row_value, row_headers = by_index[b"150"]
        assert RequestCompleted.model_validate(orjson.loads(row_value)) == far_row
        for headers in (single_headers, row_headers):
            assert headers["keypulse-reason"] == b"future_timestamp"
            assert b"2099-12-31T00:00:00.000Z" in headers["keypulse-error"]

        # freshness reads the newest landed event: ten minutes old, not 2099
        newest, age = _freshness(settings, topics.requests)
        assert newest == first[-1].occurred_at
        assert age is not None and 600 <= age < 600 + 120
        header = await eventually(lambda: _header_age(api), 30, "a freshness header")
        assert 600 <= header < 600 + 120
        last_used = await eventually(lambda: _last_used(api.client, api), 30, "the key's last use")
        assert last_used == first[-1].occurred_at

        # new traffic moves it; events a little ahead of their record (within the allowed
        # skew) count, but freshness never runs ahead of the broker: never below 0
        sent_at = datetime.now(UTC)
        ahead = [_event(sent_at + timedelta(seconds=120), i) for i in range(50)]
        produce(kafka_bootstrap, topics.requests, [encode(RequestBatch.from_events(ahead))])
        await wait_for_events(api.worker, len(first) + len(ahead), dead=2)
        assert ingest.stats.dead_letters == 2
        newest, age = _freshness(settings, topics.requests)
        assert newest is not None and sent_at <= newest <= datetime.now(UTC)
        assert age is not None and 0 <= age < 120

        async def moved() -> list[float]:
            value = await _header_age(api)
            return [value] if value < 600 else []  # empty: not yet

        (header,) = await eventually(moved, 30, "the freshness header to follow the new traffic")
        assert 0 <= header < 120
