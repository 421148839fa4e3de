"""`infra.http.routes.rules`: create, read, change and delete alert rules over HTTP, all
writes through the app's one long-lived Kafka producer, closed when the app stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.alert_admin import Publisher
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.http.api_support import Api, assert_problem, serving, serving_settings
from tests.integration.http.conftest import ALPHA_KEYS, UsageApi, usage_api
from tests.integration.ingest_helpers import worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

RULE = {
    "name": "Alpha error rate",
    "scope": {"type": "key", "key_id": ALPHA_KEYS[0]},
    "kind": "error_rate",
    "window_s": "5m",
    "threshold": 50,
    "min_requests": 10,
    "channels": [
        {"type": "email", "to": ["oncall@alpha.example"]},
        {"type": "slack", "bot_token": "xoxb-1234-secretpart", "channel": "#alerts"},
    ],
}


def _publisher(api: Api) -> Publisher:
    assert api.worker.api is not None and api.worker.api.publisher is not None
    return api.worker.api.publisher


async def _get(api: Api, path: str) -> httpx.Response:
    return await api.client.get(path, headers=api.auth("alpha:read_only"))


@pytest.fixture
async def api(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> AsyncIterator[UsageApi]:
    """Per test: the other test here opens a chDB directory of its own (one per process)."""
    async with usage_api(tmp_path, kafka_bootstrap, topic_prefix) as served:
        yield served


async def test_rule_lifecycle_over_one_producer(api: UsageApi) -> None:
    bad = await api.client.post(
        "/alert-rules", json={**RULE, "threshold": "lots"}, headers=api.auth("alpha:admin")
    )
    assert_problem(bad, 422, "invalid_request")
    assert "threshold" in bad.json()["detail"]

    created = await api.client.post(
        "/alert-rules",
        json={**RULE, "account_id": "acc_beta", "rule_id": "mine"},
        headers=api.auth("alpha:admin"),
    )
    assert created.status_code == 202, created.text
    rule: dict[str, Any] = created.json()["rule"]
    rule_id = rule["rule_id"]
    assert rule_id != "mine" and rule["account_id"] == "acc_alpha"  # server fields win
    assert rule["channels"][1]["bot_token"] == "xoxb-…"  # masked

    async def listed() -> bool:
        rows = (await _get(api, "/alert-rules")).json()["data"]
        return any(r["rule_id"] == rule_id for r in rows)

    await eventually(listed, 30, "the created rule in the listing")
    one = (await _get(api, f"/alert-rules/{rule_id}")).json()
    assert (one["name"], one["threshold"], one["window_s"]) == ("Alpha error rate", 50, 300)
    assert one["channels"][1]["bot_token"] == "xoxb-…"
    other = await api.client.get(f"/alert-rules/{rule_id}", headers=api.auth("beta:admin"))
    assert_problem(other, 404, "not_found")
    assert "Alpha" not in other.text
    beta_list = await api.client.get("/alert-rules", headers=api.auth("beta:admin"))
    assert beta_list.json()["data"] == []

    patched = await api.client.patch(
        f"/alert-rules/{rule_id}", json={"threshold": 75}, headers=api.auth("alpha:admin")
    )
    assert patched.status_code == 202 and patched.json()["rule"]["threshold"] == 75

    async def changed() -> bool:
        return bool((await _get(api, f"/alert-rules/{rule_id}")).json()["threshold"] == 75)

    await eventually(changed, 30, "the changed threshold")
    deleted = await api.client.delete(f"/alert-rules/{rule_id}", headers=api.auth("alpha:admin"))
    assert deleted.status_code == 202
    assert deleted.json() == {"status": "accepted", "rule_id": rule_id}

    async def gone() -> bool:
        return (await _get(api, f"/alert-rules/{rule_id}")).status_code == 404

    await eventually(gone, 30, "the deleted rule to disappear")
    assert _publisher(api).producers_built == 1  # three writes, one producer


async def test_the_producer_closes_with_the_app(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    settings = serving_settings(worker_settings(tmp_path, kafka_bootstrap, topic_prefix))
    async with serving(settings) as api:
        # no keys on the topic: the operator bootstrap key (scope full) acts as an admin key
        created = await api.client.post("/alert-rules", json=RULE, headers=api.auth("alpha_full"))
        assert created.status_code == 202, created.text
        publisher = _publisher(api)
        assert publisher.connected
    assert not publisher.connected
