"""`POST /verify` on the app alone: the service credential, the verdicts, a revoke seen
by the very next call, the render quota with its RateLimit headers and the 429
`quota-exceeded` problem, and 503 before the key state is read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from infra.http.problems import QUOTA_EXCEEDED_TYPE
from infra.kafka.admin import ensure_topics
from infra.tools.receivers import free_port
from schemas.codec import decode_requests
from schemas.key_format import generate_secret, hash_secret
from schemas.keys import KeyAccess, KeyType
from schemas.topics import ALL_TOPICS, KEY_EVENTS, TopicNames
from tests.eventually import eventually_sync
from tests.integration.http.api_support import LiveApi, assert_problem, bearer, live_api
from tests.integration.ingest_helpers import worker_settings
from tests.integration.producer_support import read_topic
from tests.samples.keys import Chain, publish

TOKEN = "verify-service-token-for-tests"
ACCOUNT = "acc_verifyhttp"


@dataclass
class Served:
    api: LiveApi
    chain: Chain

    def verify(self, client: httpx.Client, key: str, **body: object) -> httpx.Response:
        return client.post("/verify", json={"key": key, **body}, headers=bearer(TOKEN))


@pytest.fixture
def served(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> Iterator[Served]:
    chain = Chain(ACCOUNT)
    chain.create_key("key_admin1", access=KeyAccess.ADMIN)
    chain.create_key("key_live01")
    chain.create_key("key_test01", key_type=KeyType.TEST)
    chain.create_key("key_gone01")
    chain.revoke("key_gone01")
    publish(kafka_bootstrap, topics.key_events, chain.events)
    api = {"port": free_port(), "verify_tokens": [hash_secret(TOKEN)]}
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, api=api)
    with live_api(settings) as live:
        yield Served(live, chain)


def test_verify(served: Served) -> None:
    secrets = served.chain.secrets
    with served.api.client() as client:
        for headers in ({}, bearer(secrets["key_live01"]), bearer("some-other-token")):
            refused = client.post("/verify", json={"key": secrets["key_live01"]}, headers=headers)
            assert_problem(refused, 401, "invalid_service_token")

        live = served.verify(client, secrets["key_live01"], render=True)
        assert live.status_code == 200, live.text
        body = live.json()
        assert body["verdict"] == "valid" and body["valid"] is True
        assert (body["key_id"], body["account_id"]) == ("key_live01", ACCOUNT)
        assert body["watermark"] is False and body["quota"] is None
        assert "RateLimit" not in live.headers  # live keys have no render quota

        padded = served.verify(client, f" {secrets['key_live01']}").json()
        assert (padded["verdict"], padded["hint"]) == ("malformed", "whitespace")
        assert served.verify(client, secrets["key_gone01"]).json()["verdict"] == "revoked"

        for overlap in ("0", "1h"):  # a roll: the old key works for the overlap only
            created = client.post(
                "/api-keys",
                json={"name": f"rolled {overlap}", "type": "live"},
                headers=bearer(secrets["key_admin1"]),
            ).json()
            rolled = client.post(
                f"/api-keys/{created['id']}/roll",
                json={"overlap": overlap},
                headers=bearer(secrets["key_admin1"]),
            )
            assert rolled.status_code == 201, rolled.text
            old = served.verify(client, created["secret"]).json()
            new = served.verify(client, rolled.json()["secret"]).json()
            assert old["verdict"] == ("expired" if overlap == "0" else "valid"), old
            assert (new["verdict"], new["key_id"]) == ("valid", rolled.json()["id"])

        revoke = client.post(
            "/api-keys/key_live01/revoke", json={}, headers=bearer(secrets["key_admin1"])
        )
        assert revoke.status_code == 200, revoke.text
        assert served.verify(client, secrets["key_live01"]).json()["verdict"] == "revoked"

        def first_render() -> httpx.Response | None:  # 503 (not counted) until the counts are read
            response = served.verify(client, secrets["key_test01"], render=True)
            return None if response.status_code == 503 else response

        render = eventually_sync(first_render, 10, "today's render counts read")
        assert render is not None
        remaining = [render.json()["quota"]["remaining"]]
        for _ in range(99):
            render = served.verify(client, secrets["key_test01"], render=True)
            assert render.status_code == 200, render.text
            assert render.json()["watermark"] is True
            assert render.headers["RateLimit-Policy"] == '"renders";q=100;w=86400'
            remaining.append(render.json()["quota"]["remaining"])
        assert remaining == list(range(99, -1, -1))
        assert render.headers["RateLimit"].startswith('"renders";r=0;t=')

        refused = served.verify(client, secrets["key_test01"], render=True)
        assert_problem(refused, 429, "quota_exceeded")
        problem = refused.json()
        assert problem["type"] == QUOTA_EXCEEDED_TYPE
        assert problem["violated-policies"] == ["renders"]
        assert "00:00 UTC" in problem["detail"]
        reset = int(refused.headers["Retry-After"])
        assert 0 < reset <= 86_400
        assert refused.headers["RateLimit"] == f'"renders";r=0;t={reset}'
        plain = served.verify(client, secrets["key_test01"])  # not a render: still valid
        assert plain.json()["verdict"] == "valid"
        from_ip = served.verify(client, secrets["key_gone01"], client_ip="198.51.100.7")
        assert from_ip.json()["verdict"] == "revoked"

    # the verdicts are events on the requests topic (the worker projects them)
    settings = served.api.settings
    topic = TopicNames.with_prefix(settings.kafka.topic_prefix).requests

    def outcomes() -> list[tuple[str, str | None, str | None, int]]:
        rows: list[tuple[str, str | None, str | None, int]] = []
        for record in read_topic(settings.kafka.bootstrap_servers, topic):
            cols = decode_requests(record.value).outcomes
            if cols:
                columns = (cols["outcome"], cols["key_id"], cols["client_ip"], cols["count"])
                rows += zip(*columns, strict=True)
        valid = sum(n for outcome, key, _, n in rows if (outcome, key) == ("valid", "key_test01"))
        revoked = ("revoked", "key_gone01", "198.51.100.7", 1) in rows
        return rows if revoked and valid >= 101 else []

    seen = eventually_sync(outcomes, 20, "the /verify verdicts on the requests topic")
    assert not any(key == secrets["key_live01"] for _, key, _, _ in seen)  # ids, no secrets
    counted = sum(n for outcome, key, _, n in seen if (outcome, key) == ("valid", "key_test01"))
    assert counted == 101  # 100 admitted renders and one plain verify
    assert sum(1 for o, key, _, _ in seen if (o, key) == ("quota_exceeded", "key_test01")) == 1


def test_verify_before_the_key_state_is_read(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """No key-events topic under this prefix: the registry never loads, /verify is 503.
    The other topics exist (as `topics ensure` leaves them): with no requests topic
    either, the outcome recorder's close waits ~10 s for its metadata."""
    ensure_topics(
        kafka_bootstrap, topic_prefix, specs=tuple(t for t in ALL_TOPICS if t != KEY_EVENTS)
    )
    api = {"port": free_port(), "verify_tokens": [hash_secret(TOKEN)]}
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, api=api)
    with live_api(settings, registry_ready=False) as live, live.client() as client:
        response = client.post(
            "/verify", json={"key": generate_secret("live")}, headers=bearer(TOKEN)
        )
        assert_problem(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) >= 1
