"""The HTTP API against the running worker: auth matrix, figures, OpenAPI, metrics."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from infra.clickhouse import make_client
from infra.http.auth import hash_secret
from infra.wiring import Worker, running_worker
from projections.queries import UsageQueries
from projections.windows import Window
from schemas.codec import encode
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ALPHA, BETA = "acc_alpha", "acc_beta"
ALPHA_KEYS = ["key_alpha0001", "key_alpha0002"]
BETA_KEY = "key_beta00001"
SECRETS = {
    "alpha_full": "alpha-full-secret",
    "alpha_ro": "alpha-read-only-secret",
    "alpha_revoked": "alpha-revoked-secret",
    "beta_full": "beta-full-secret",
}
OPS_PATHS = {"/healthz", "/readyz", "/metrics"}


def _management_keys() -> list[dict[str, Any]]:
    return [
        {
            "key_id": "mk_alphafull",
            "account_id": ALPHA,
            "scope": "full",
            "secret_hash": hash_secret(SECRETS["alpha_full"]),
        },
        {
            "key_id": "mk_alpharo",
            "account_id": ALPHA,
            "scope": "read_only",
            "secret_hash": hash_secret(SECRETS["alpha_ro"]),
        },
        {
            "key_id": "mk_alpharev",
            "account_id": ALPHA,
            "scope": "full",
            "secret_hash": hash_secret(SECRETS["alpha_revoked"]),
            "revoked": True,
        },
        {
            "key_id": "mk_betafull",
            "account_id": BETA,
            "scope": "full",
            "secret_hash": hash_secret(SECRETS["beta_full"]),
        },
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _traffic(account: str, key: str, n: int) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            key_id=key,
            account_id=account,
            method="GET",
            route="/v1/x",
            status=503 if i % 10 == 0 else 200,
            latency_ms=float(i % 97),
            client_ip="198.51.100.3",
        )
        for i in range(n)
    ]


@dataclass
class Api:
    client: httpx.AsyncClient
    worker: Worker
    settings: Any

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {SECRETS[who]}"}


@pytest.fixture
async def api(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> AsyncIterator[Api]:
    events = _traffic(ALPHA, ALPHA_KEYS[0], 300) + _traffic(ALPHA, ALPHA_KEYS[1], 100)
    events += _traffic(BETA, BETA_KEY, 50)
    produce(kafka_bootstrap, topics.requests, batches(events, 200))
    created = [
        KeyCreated(
            key_id=k,
            account_id=acc,
            name=f"name of {k}",
            key_type=KeyType.LIVE,
            secret_hash="sha256:" + "ef" * 32,
            plan=Plan.PRO,
        )
        for acc, k in [(ALPHA, ALPHA_KEYS[0]), (ALPHA, ALPHA_KEYS[1]), (BETA, BETA_KEY)]
    ]
    produce(kafka_bootstrap, topics.key_events, [encode(e) for e in created])
    port = _free_port()
    settings = worker_settings(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        api={"port": port, "management_keys": _management_keys()},
    )
    async with running_worker(settings, serve_http=True) as worker:
        await wait_for_events(worker, len(events))
        assert worker.app.keys is not None
        while worker.app.keys.processed < len(created):
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            yield Api(client, worker, settings)


def _routes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path not in OPS_PATHS
        for method in item
    ]


def _concrete(path: str) -> str:
    path = path.replace("{key_id}", ALPHA_KEYS[0])
    return re.sub(r"\{[^}]+\}", "alpha_thing_id", path)


def _assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code:
        assert body["error"] == code
    assert "data" not in body
    assert "name of" not in response.text  # no key names (account data) in an error


async def test_auth_matrix_for_every_endpoint(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    routes = _routes(spec)
    assert ("GET", "/api-keys/{key_id}/usage") in routes
    for method, path in routes:
        url = _concrete(path)
        no_key = await api.client.request(method, url)
        _assert_problem(no_key, 401, "invalid_api_key")
        unknown = await api.client.request(method, url, headers={"Authorization": "Bearer nope"})
        _assert_problem(unknown, 401, "invalid_api_key")
        revoked = await api.client.request(method, url, headers=api.auth("alpha_revoked"))
        _assert_problem(revoked, 401, "revoked_api_key")
        assert "revoked" in revoked.json()["detail"]
        if method != "GET":
            ro = await api.client.request(method, url, headers=api.auth("alpha_ro"), json={})
            _assert_problem(ro, 403, "insufficient_scope")
        if "{" in path:
            other = await api.client.request(method, url, headers=api.auth("beta_full"), json={})
            _assert_problem(other, 404, "not_found")
            assert "name of" not in other.text


async def test_usage_figures_equal_the_query_layer(api: Api) -> None:
    now = datetime.now(UTC)
    client = make_client(api.settings)
    try:
        queries = UsageQueries(client)
        for window in Window:
            for key in ALPHA_KEYS:
                r = await api.client.get(
                    f"/api-keys/{key}/usage",
                    params={"window": window.value},
                    headers=api.auth("alpha_ro"),
                )
                assert r.status_code == 200, r.text
                body = r.json()
                expected = queries.key_usage(ALPHA, key, window, now)
                assert body["requests"] == expected.requests
                assert body["errors_5xx"] == expected.errors_5xx
                assert body["error_rate"] == pytest.approx(expected.error_rate)
                assert body["latency_p95_ms"] == pytest.approx(expected.p95_ms)
                assert float(r.headers["X-Data-Freshness-Seconds"]) >= 0
    finally:
        client.close()
    listing = await api.client.get("/api-keys", headers=api.auth("alpha_ro"))
    rows = {row["key_id"]: row for row in listing.json()["data"]}
    assert set(rows) == set(ALPHA_KEYS)
    assert rows[ALPHA_KEYS[0]]["requests_24h"] == 300
    assert rows[ALPHA_KEYS[0]]["last_used_at"] is not None
    beta = await api.client.get("/api-keys", headers=api.auth("beta_full"))
    assert [row["key_id"] for row in beta.json()["data"]] == [BETA_KEY]
    usage = await api.client.get("/usage", params={"window": "7d"}, headers=api.auth("alpha_ro"))
    assert usage.json()["total"]["requests"] == 400
    series = await api.client.get(
        f"/api-keys/{ALPHA_KEYS[1]}/timeseries",
        params={"window": "24h", "step": "1h"},
        headers=api.auth("alpha_ro"),
    )
    assert sum(p["requests"] for p in series.json()["points"]) == 100
    bad = await api.client.get(
        f"/api-keys/{ALPHA_KEYS[1]}/usage", params={"window": "2w"}, headers=api.auth("alpha_ro")
    )
    _assert_problem(bad, 422, "invalid_request")
    assert "window" in bad.json()["detail"]


async def test_openapi_validates_and_metrics_parse(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    validate(spec)
    assert (await api.client.get("/docs")).status_code == 200
    metrics = await api.client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert families["keypulse_events_ingested"].samples[0].value == 450
    assert "keypulse_data_freshness_seconds" in families
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["kafka"] is True and ready.json()["clickhouse"] is True


async def test_alert_rules_lifecycle_over_http(api: Api) -> None:
    rule = {
        "name": "Alpha error rate",
        "scope": {"type": "key", "key_id": ALPHA_KEYS[0]},
        "kind": "error_rate",
        "window_s": "5m",
        "threshold": 50,
        "min_requests": 10,
        "channels": [{"type": "email", "to": ["oncall@alpha.example"]}],
    }
    bad = await api.client.post(
        "/alert-rules", json={**rule, "threshold": "lots"}, headers=api.auth("alpha_full")
    )
    _assert_problem(bad, 422, "invalid_request")
    assert "threshold" in bad.json()["detail"]

    created = await api.client.post("/alert-rules", json=rule, headers=api.auth("alpha_full"))
    assert created.status_code == 202, created.text
    rule_id = created.json()["rule"]["rule_id"]
    for _ in range(200):
        listed = await api.client.get("/alert-rules", headers=api.auth("alpha_ro"))
        if any(r["rule_id"] == rule_id for r in listed.json()["data"]):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("rule never became visible")
    one = await api.client.get(f"/alert-rules/{rule_id}", headers=api.auth("alpha_ro"))
    assert one.json()["name"] == "Alpha error rate"
    other = await api.client.get(f"/alert-rules/{rule_id}", headers=api.auth("beta_full"))
    _assert_problem(other, 404, "not_found")
    assert "Alpha" not in other.text
    beta_list = await api.client.get("/alert-rules", headers=api.auth("beta_full"))
    assert beta_list.json()["data"] == []

    patched = await api.client.patch(
        f"/alert-rules/{rule_id}", json={"threshold": 75}, headers=api.auth("alpha_full")
    )
    assert patched.status_code == 202 and patched.json()["rule"]["threshold"] == 75
    deleted = await api.client.delete(f"/alert-rules/{rule_id}", headers=api.auth("alpha_full"))
    assert deleted.status_code == 202
    for _ in range(200):
        gone = await api.client.get(f"/alert-rules/{rule_id}", headers=api.auth("alpha_ro"))
        if gone.status_code == 404:
            break
        await asyncio.sleep(0.05)
    assert gone.status_code == 404
    alerts = await api.client.get("/alerts", headers=api.auth("alpha_ro"))
    assert alerts.status_code == 200 and isinstance(alerts.json()["data"], list)
    dead = await api.client.get(
        "/deliveries", params={"status": "dead"}, headers=api.auth("alpha_ro")
    )
    assert dead.status_code == 200 and dead.json()["data"] == []
