"""`infra.http.routes.health`: `/metrics` and `/readyz` of a worker after real traffic, a
fired alert and its deliveries show the evaluator's cycles, the deliveries by outcome and
a numeric consumer lag."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.eventually import eventually
from tests.integration.http.conftest import FIRED_REQUESTS, HOOKS, FiredApi
from tests.integration.ingest_helpers import wait_for_events

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


async def _scrape(fired: FiredApi) -> dict[str, dict[tuple[str, ...], float]]:
    """Sample values by sample name and label values."""
    r = await fired.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(s.labels.values())] = s.value
    return samples


async def test_metrics_and_readyz_after_traffic_an_alert_and_deliveries(fired: FiredApi) -> None:
    await wait_for_events(fired.worker, FIRED_REQUESTS)
    scheduler = fired.worker.alerting.scheduler if fired.worker.alerting else None
    assert scheduler is not None
    await eventually(lambda: scheduler.stats.delivered == len(HOOKS), 30, "both deliveries")

    metrics = await _scrape(fired)
    assert metrics["keypulse_events_ingested_total"][()] == FIRED_REQUESTS
    assert metrics["keypulse_eval_cycles_total"][()] >= 1
    assert metrics["keypulse_eval_cycle_seconds_count"][()] >= 1
    assert metrics["keypulse_deliveries_total"] == {("delivered",): len(HOOKS)}
    assert metrics["keypulse_consumer_lag"][()] == 0  # everything produced is ingested
    assert metrics["keypulse_data_freshness_seconds"][()] >= 0

    ready = await fired.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert (body["status"], body["kafka"], body["clickhouse"]) == ("ready", True, True)
    assert body["consumer_lag"] == 0
    assert isinstance(body["freshness_seconds"], float)

    cycles = metrics["keypulse_eval_cycles_total"][()]
    evaluator = fired.worker.alerting.evaluator if fired.worker.alerting else None
    assert evaluator is not None
    await eventually(lambda: evaluator.stats.cycles > cycles, 30, "another evaluator cycle")
    assert (await _scrape(fired))["keypulse_eval_cycles_total"][()] > cycles  # live, not frozen
