"""Fixtures for the HTTP API tests: a worker serving the API over a known dataset, one
that has also fired an alert and delivered it to a real local webhook receiver, and the
app alone (`live`) over accounts made through the key service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from alerting.delivery import delivery_id
from alerting.fingerprint import channel_id, fingerprint
from infra.kafka.admin import ensure_topics
from infra.settings import Settings
from infra.tools.receivers import HttpReceiver, free_port, serving_http
from schemas.alerts import WebhookChannel
from schemas.keys import KeyType
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from streams.keyservice.service import start_key_service
from tests.conftest import fresh_topic_prefix
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import alert_settings, record_traffic
from tests.integration.http.api_support import (
    ALPHA,
    BETA,
    Api,
    LiveApi,
    Tenant,
    chain_tenant,
    create_tenant,
    live_api,
    management_keys,
    role_chain,
    serving,
    serving_settings,
)
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.alerting import SECRET
from tests.samples.keys import Chain, publish

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


ALPHA_ROLES = ("admin", "read_only", "full", "revoked")
BETA_ROLES = ("admin",)


def account_chains() -> tuple[Chain, Chain]:
    """Alpha with a key per access level and the two usage keys, beta with an admin key
    and its usage key (the usage keys are full-access live keys, as the product's are)."""
    alpha = role_chain(ALPHA, ALPHA_ROLES)
    for key in ALPHA_KEYS:
        alpha.create_key(key, f"name of {key}", KeyType.LIVE)
    beta = role_chain(BETA, BETA_ROLES)
    beta.create_key(BETA_KEY, f"name of {BETA_KEY}", KeyType.LIVE)
    return alpha, beta


def chain_secrets(alpha: Chain, beta: Chain) -> dict[str, str]:
    return chain_tenant(alpha, ALPHA_ROLES).secrets() | chain_tenant(beta, BETA_ROLES).secrets()


@dataclass
class UsageApi(Api):
    events: list[RequestCompleted]


@asynccontextmanager
async def usage_api(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> AsyncIterator[UsageApi]:
    """The API over 300 + 100 events of two alpha keys and 50 of a beta key (the registry's
    topics under `topic_prefix` exist)."""
    topics = TopicNames.with_prefix(topic_prefix)
    now = datetime.now(UTC)
    events = traffic(ALPHA, ALPHA_KEYS[0], 300, now) + traffic(ALPHA, ALPHA_KEYS[1], 100, now)
    events += traffic(BETA, BETA_KEY, 50, now)
    produce(kafka_bootstrap, topics.requests, batches(events, 200))
    alpha, beta = account_chains()
    publish(kafka_bootstrap, topics.key_events, alpha.events + beta.events)
    settings = serving_settings(worker_settings(tmp_path, kafka_bootstrap, topic_prefix))
    async with serving(settings, chain_secrets(alpha, beta)) as served:
        await wait_for_events(served.worker, len(events))
        keys = served.worker.app.keys
        assert keys is not None
        total = len(alpha.events) + len(beta.events)
        await eventually(lambda: keys.processed >= total, 30, "the key events")
        yield UsageApi(served.client, served.worker, served.settings, served.secrets, events)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[UsageApi]:
    """`usage_api`, one per test module: its tests only read, in the module's event loop
    (`pytest.mark.asyncio(loop_scope="module")`), and open no other chDB directory (one
    per process: a module whose other tests do overrides this with a per-test one)."""
    prefix = fresh_topic_prefix()
    ensure_topics(kafka_bootstrap, prefix)
    async with usage_api(tmp_path_factory.mktemp("api"), kafka_bootstrap, prefix) as served:
        yield served


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
    alpha, beta = account_chains()
    publish(kafka_bootstrap, topics.key_events, alpha.events + beta.events)
    urls = {path: receiver.url(path) for path in HOOKS}
    async with serving(alerting_settings, chain_secrets(alpha, beta)) as served:
        created = await served.client.post(
            "/alert-rules", json=fired_rule(list(urls.values())), headers=served.auth("alpha:admin")
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
        yield FiredApi(
            served.client, served.worker, served.settings, served.secrets, receiver, rule_id, ids
        )


# --------------------------------------------------------------------------- the app alone


@dataclass
class Live:
    api: LiveApi
    alpha: Tenant
    beta: Tenant

    def secret(self, who: str) -> str:
        """`alpha:admin`, `beta:admin`, ... (see `Tenant.secrets`)."""
        return (self.alpha.secrets() | self.beta.secrets())[who]


@pytest.fixture
def live(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> Iterator[Live]:
    """The app alone under uvicorn (its own key service, chDB under `tmp_path`, no worker),
    over alpha (a key per access level) and beta (an admin key), both made through a key
    service before the app started, and the operator bootstrap keys of `management_keys`."""
    with start_key_service(kafka_bootstrap, topics.key_events) as service:
        alpha = create_tenant(service, ALPHA, ALPHA_ROLES)
        beta = create_tenant(service, BETA, BETA_ROLES)
    api = {
        "port": free_port(),
        "management_keys": management_keys(),
        # the access matrix sends ~40 unknown or malformed keys from 127.0.0.1: no brute
        # force here (tests/integration/http/test_brute_force.py tests the limit)
        "auth_failures_before_delay": 1_000_000,
        "auth_failures_before_block": 1_000_000,
    }
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, api=api)
    with live_api(settings) as served:
        yield Live(served, alpha, beta)
