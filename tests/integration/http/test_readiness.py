"""The app before its key registry is loaded (`infra.http.key_registry`): it serves, says
it is not ready, answers registry keys with 503 and Retry-After (never a wrong "unknown
key"), still lets the operator bootstrap keys in, and becomes ready by itself once the
key-events topic exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kafka.admin import ensure_topics
from infra.tools.receivers import free_port
from schemas.key_format import generate_secret
from tests.eventually import eventually_sync
from tests.integration.http.api_support import (
    SECRETS,
    assert_problem,
    bearer,
    live_api,
    management_keys,
)
from tests.integration.ingest_helpers import worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_not_ready_until_the_key_registry_has_read_its_topic(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    api = {"port": free_port(), "management_keys": management_keys()}
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, api=api)
    with live_api(settings, registry_ready=False) as served, served.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert (ready.json()["key_registry"], ready.json()["kafka"]) == (False, True)

        registry_key = client.get("/account", headers=bearer(generate_secret("live")))
        assert_problem(registry_key, 503, "unavailable")
        assert int(registry_key.headers["Retry-After"]) >= 1
        operator = client.get("/alert-rules", headers=bearer(SECRETS["alpha_ro"]))
        assert operator.status_code == 200, operator.text
        listing = client.get("/api-keys", headers=bearer(SECRETS["alpha_ro"]))
        assert listing.json() == {"data": []}  # the projection alone, meanwhile
        assert_problem(client.get("/account", headers=bearer(SECRETS["alpha_ro"])), 503)

        ensure_topics(kafka_bootstrap, topic_prefix)
        eventually_sync(
            lambda: client.get("/readyz").status_code == 200, 60, "readiness once the topic exists"
        )
        assert client.get("/readyz").json()["key_registry"] is True
        unknown = client.get("/account", headers=bearer(generate_secret("live")))
        assert_problem(unknown, 401, "invalid_api_key")
        no_account = client.get("/account", headers=bearer(SECRETS["alpha_ro"]))
        assert_problem(no_account, 404, "account_not_found")
