"""Fixtures for the HTTP API tests: a worker serving the API over a known dataset, and
one that has also fired an alert and delivered it to a real local webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.delivery import delivery_id
from alerting.fingerprint import channel_id, fingerprint
from infra.settings import Settings
from infra.tools.receivers import HttpReceiver, serving_http
from schemas.alerts import WebhookChannel
from schemas.codec import encode
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import alert_settings, record_traffic
from tests.integration.http.api_support import (
    ALPHA,
    BETA,
    Api,
    serving,
    serving_settings,
)
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.alerting import SECRET

ALPHA_KEYS = ["key_alpha0001", "key_alpha0002"]
BETA_KEY = "key_beta00001"
AGES = [timedelta(hours=2), timedelta(days=3), timedelta(days=20), timedelta(days=33)]
"""Event ages, each far from the 24 h, 7 d and 30 d window edges, and within the raw
retention (35 days): older events are dead-lettered (`stale_timestamp`)."""


def traffic(account: str, key: str, n: int, now: datetime) -> list[RequestCompleted]:
    """`n` events of one key spread over `AGES`, with errors, renders and bytes."""
    return [
        RequestCompleted(
            key_id=key,
            account_id=account,
            occurred_at=now - AGES[i % len(AGES)] - timedelta(seconds=i),
            method="GET",
            route="/v1/x",
            status=503 if i % 10 == 0 else 404 if i % 7 == 0 else 200,
            latency_ms=float(i % 100 + 1),
            client_ip="198.51.100.3",
            bytes_out=10 * i,
            is_render=i % 5 == 0,
        )
        for i in range(n)
    ]


def key_created(account: str, key: str) -> KeyCreated:
    return KeyCreated(
        key_id=key,
        account_id=account,
        name=f"name of {key}",
        key_type=KeyType.LIVE,
        secret_hash="sha256:" + "ef" * 32,
        plan=Plan.PRO,
    )


@dataclass
class UsageApi(Api):
    events: list[RequestCompleted]


@pytest.fixture
async def api(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> AsyncIterator[UsageApi]:
    """The API over 300 + 100 events of two alpha keys and 50 of a beta key."""
    now = datetime.now(UTC)
    events = traffic(ALPHA, ALPHA_KEYS[0], 300, now) + traffic(ALPHA, ALPHA_KEYS[1], 100, now)
    events += traffic(BETA, BETA_KEY, 50, now)
    produce(kafka_bootstrap, topics.requests, batches(events, 200))
    created = [key_created(ALPHA, k) for k in ALPHA_KEYS] + [key_created(BETA, BETA_KEY)]
    produce(kafka_bootstrap, topics.key_events, [encode(e) for e in created])
    settings = serving_settings(worker_settings(tmp_path, kafka_bootstrap, topic_prefix))
    async with serving(settings) as served:
        await wait_for_events(served.worker, len(events))
        keys = served.worker.app.keys
        assert keys is not None
        await eventually(lambda: keys.processed >= len(created), 30, "the key events")
        yield UsageApi(served.client, served.worker, served.settings, events)


# --------------------------------------------------------------------------- a fired alert

FIRED_KEY = ALPHA_KEYS[0]
FIRED_REQUESTS = 20


HOOKS = ("/hook", "/other-hook")
"""The rule's two webhook channels (paths on one receiver): two deliveries per notification."""


@dataclass
class FiredApi(Api):
    """The API after `FIRED_REQUESTS` requests of `FIRED_KEY` fired `rule_id`, whose
    firing notification the receiver got on each of `HOOKS`, as `delivery_ids[path]`."""

    receiver: HttpReceiver
    rule_id: str
    delivery_ids: dict[str, str]


def fired_rule(urls: list[str]) -> dict[str, object]:
    return {
        "name": "Alpha traffic",
        "scope": {"type": "key", "key_id": FIRED_KEY},
        "kind": "request_count",
        "window_s": "1h",
        "threshold": FIRED_REQUESTS // 2,
        "channels": [{"type": "webhook", "url": url, "secret": SECRET} for url in urls],
    }


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with serving_http() as server:
        yield server


@pytest.fixture
def alerting_settings(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> Settings:
    return serving_settings(alert_settings(tmp_path, kafka_bootstrap, topic_prefix))


@pytest.fixture
async def fired(
    alerting_settings: Settings, kafka_bootstrap: str, topics: TopicNames, receiver: HttpReceiver
) -> AsyncIterator[FiredApi]:
    """A rule created over HTTP, traffic that breaches it, both firing webhooks received."""
    produce(kafka_bootstrap, topics.key_events, [encode(key_created(ALPHA, FIRED_KEY))])
    urls = {path: receiver.url(path) for path in HOOKS}
    async with serving(alerting_settings) as served:
        created = await served.client.post(
            "/alert-rules", json=fired_rule(list(urls.values())), headers=Api.auth("alpha_full")
        )
        assert created.status_code == 202, created.text
        rule_id = created.json()["rule"]["rule_id"]
        statuses = [200] * FIRED_REQUESTS
        await asyncio.to_thread(
            record_traffic, kafka_bootstrap, topics.requests, FIRED_KEY, ALPHA, statuses
        )
        await eventually(lambda: len(receiver.received) >= len(HOOKS), 60, "the firing webhooks")
        assert sorted(r.path for r in receiver.received) == sorted(HOOKS)
        webhook_id = f"{fingerprint(rule_id, FIRED_KEY)}.1.firing"
        assert {r.headers["webhook-id"] for r in receiver.received} == {webhook_id}
        ids = {
            path: delivery_id(webhook_id, channel_id(WebhookChannel(url=url, secret=SECRET)))
            for path, url in urls.items()
        }
        yield FiredApi(served.client, served.worker, served.settings, receiver, rule_id, ids)
