"""`infra.http.routes.usage`: figures per key, window and account equal the truth the
test computes from the events it produced itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.windows import Window
from schemas.requests import RequestCompleted
from tests.integration.http.api_support import ALPHA, assert_problem, in_window, usage_truth
from tests.integration.http.conftest import ALPHA_KEYS, BETA_KEY, UsageApi

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.asyncio(loop_scope="module"),  # the module-scoped `api`
]

P95_TOLERANCE_MS = 3.0
"""t-digest against the exact nearest rank on latencies 1..100 ms."""


def _of(api: UsageApi, window: Window, key: str | None = None) -> list[RequestCompleted]:
    now = datetime.now(UTC)
    return [
        e
        for e in api.events
        if e.account_id == ALPHA and (key is None or e.key_id == key) and in_window(e, window, now)
    ]


async def test_key_usage_per_window_equals_the_events_produced(api: UsageApi) -> None:
    seen: dict[str, list[int]] = {key: [] for key in ALPHA_KEYS}
    for window in Window:
        for key in ALPHA_KEYS:
            r = await api.client.get(
                f"/api-keys/{key}/usage",
                params={"window": window.value},
                headers=api.auth("alpha:read_only"),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            truth = usage_truth(_of(api, window, key))
            seen[key].append(truth.requests)
            assert (body["key_id"], body["window"]) == (key, window.value)
            assert body["requests"] == truth.requests
            assert body["errors_4xx"] == truth.errors_4xx
            assert body["errors_5xx"] == truth.errors_5xx
            assert body["renders"] == truth.renders
            assert body["bytes_out"] == truth.bytes_out
            assert body["error_rate"] == pytest.approx(truth.error_rate)
            assert body["latency_p95_ms"] == pytest.approx(truth.p95_ms, abs=P95_TOLERANCE_MS)
            assert float(r.headers["X-Data-Freshness-Seconds"]) >= 0
    for counts in seen.values():  # the windows really cut: 24h < 7d < 30d < everything
        assert 0 < counts[0] < counts[1] < counts[2] < len(api.events)


async def test_account_usage_and_timeseries_equal_the_events_produced(api: UsageApi) -> None:
    for window in Window:
        r = await api.client.get(
            "/usage", params={"window": window.value}, headers=api.auth("alpha:read_only")
        )
        assert r.status_code == 200, r.text
        body = r.json()
        truth = usage_truth(_of(api, window))
        assert body["total"]["requests"] == truth.requests
        assert body["total"]["errors_5xx"] == truth.errors_5xx
        assert body["total"]["bytes_out"] == truth.bytes_out
        per_key = {k: len(_of(api, window, k)) for k in ALPHA_KEYS}
        assert {t["key_id"]: t["requests"] for t in body["top_keys"]} == per_key
        assert BETA_KEY not in r.text

    series = await api.client.get(
        f"/api-keys/{ALPHA_KEYS[1]}/timeseries",
        params={"window": "7d", "step": "1h"},
        headers=api.auth("alpha:read_only"),
    )
    assert series.status_code == 200, series.text
    points = series.json()["points"]
    expected = _of(api, Window.D7, ALPHA_KEYS[1])
    assert sum(p["requests"] for p in points) == len(expected)
    assert sum(p["errors_5xx"] for p in points) == usage_truth(expected).errors_5xx
    assert series.json()["step_s"] == 3600


async def test_another_accounts_key_is_not_found(api: UsageApi) -> None:
    for path in (f"/api-keys/{BETA_KEY}/usage", f"/api-keys/{BETA_KEY}/timeseries"):
        r = await api.client.get(path, headers=api.auth("alpha:admin"))
        assert_problem(r, 404, "key_not_found")
