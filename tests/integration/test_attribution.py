"""Unattributed traffic through the real worker, chDB and the HTTP API: events for a key
the registry does not know, and for another account's key sent under this account, count
in no account's usage, so the account total is the sum of its listed keys; they show up
in `keypulse_unattributed_events_total` and in `key_anomalies` with their counts (one row
per pair, following its running total, kept across a restart). A key created shortly
after its first requests landed (within the grace) is attributed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.clickhouse import make_client
from infra.wiring import Worker
from schemas.plans import Plan
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from streams.worker.attribution_agent import AttributionAgent
from tests.eventually import eventually
from tests.integration.http.api_support import (
    ALPHA,
    BETA,
    Api,
    UsageTruth,
    serving,
    serving_settings,
    usage_truth,
)
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

OWNED = ["key_attrib0001", "key_attrib0002"]  # alpha's; the second one revoked
LATE = "key_attriblate"  # alpha's, created after its first requests landed
UNKNOWN = "key_attribnone"  # never created
BETA_KEY = "key_attribbeta"  # beta's, also sent under alpha
GRACE_S = 4
"""The worker's grace (it checks every GRACE_S / 2 s): each wait below is a few of its
rounds. The late key is applied ~0.5 s after its requests landed (measured), well within."""
SENT = {
    (ALPHA, OWNED[0]): 120,
    (ALPHA, OWNED[1]): 80,
    (ALPHA, LATE): 30,
    (ALPHA, UNKNOWN): 25,
    (ALPHA, BETA_KEY): 15,
    (BETA, BETA_KEY): 40,
}


def _registry() -> tuple[Chain, Chain]:
    """Alpha with its two keys (the second revoked), beta with its one."""
    alpha = Chain(ALPHA, Plan.PRO)
    for key in OWNED:
        alpha.create_key(key)
    alpha.revoke(OWNED[1])
    beta = Chain(BETA, Plan.PRO)
    beta.create_key(BETA_KEY)
    return alpha, beta


def _traffic(now: datetime) -> list[RequestCompleted]:
    rng = random.Random(11)
    events = [
        RequestCompleted(
            key_id=key,
            account_id=account,
            occurred_at=now - timedelta(minutes=rng.randint(5, 600)),
            method="GET",
            route="/v1/x",
            status=rng.choice([200, 200, 200, 404, 503]),
            latency_ms=float(rng.randint(1, 400)),
            client_ip="198.51.100.9",
            bytes_out=rng.randint(0, 9000),
            is_render=rng.random() < 0.3,
        )
        for (account, key), n in SENT.items()
        for _ in range(n)
    ]
    rng.shuffle(events)
    return events


def _attribution(worker: Worker) -> AttributionAgent:
    assert worker.attribution is not None
    return worker.attribution


async def _metric(api: Api) -> dict[str, float]:
    text = (await api.client.get("/metrics")).text
    return {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "keypulse_unattributed_events_total"
    }


def _anomalies(api: Api) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(account, key, anomaly) -> (events, rows) of the request findings."""
    client = make_client(api.settings)
    try:
        rows = client.query(
            "SELECT account_id, key_id, anomaly, sum(events), count() FROM key_anomalies FINAL "
            "WHERE event_type = 'request.completed' GROUP BY 1, 2, 3"
        ).result_rows
    finally:
        client.close()
    return {(str(a), str(k), str(n)): (int(e), int(c)) for a, k, n, e, c in rows}


def _expected(unknown: int, mismatch: int) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {
        (ALPHA, UNKNOWN, "unattributed_request"): (unknown, 1),
        (ALPHA, BETA_KEY, "account_mismatch"): (mismatch, 1),
    }


async def _counted(api: Api, unknown: int, mismatch: int) -> None:
    """Wait until the task has recorded these totals, then check the metric and the rows."""
    attribution = _attribution(api.worker)
    expected = {"unknown_key": unknown, "account_mismatch": mismatch}
    await eventually(
        lambda: attribution.stats.events_by_reason == expected,
        GRACE_S + 60,
        f"the unattributed events counted ({attribution.stats})",
    )
    checks = attribution.stats.checks
    await eventually(
        lambda: attribution.stats.checks > checks and attribution.stats.waiting == 0,
        30,
        "a check with nothing left waiting",
    )
    assert attribution.stats.events_by_reason == expected  # the late key was attributed
    assert await _metric(api) == expected
    assert _anomalies(api) == _expected(unknown, mismatch)


def _more(now: datetime, account: str, key: str, n: int) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            key_id=key,
            account_id=account,
            occurred_at=now - timedelta(minutes=1),
            method="GET",
            route="/v1/x",
            status=200,
            latency_ms=5.0,
            client_ip="198.51.100.9",
        )
        for _ in range(n)
    ]


def _counters(usage: dict[str, object]) -> tuple[object, ...]:
    return tuple(usage[c] for c in ("requests", "errors_4xx", "errors_5xx", "renders", "bytes_out"))


def _truth_counters(truth: UsageTruth) -> tuple[int, ...]:
    return (truth.requests, truth.errors_4xx, truth.errors_5xx, truth.renders, truth.bytes_out)


async def test_unattributed_events_count_in_no_account_and_are_recorded(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix, attribution_grace_s=GRACE_S)
    now = datetime.now(UTC)
    events = _traffic(now)
    async with serving(serving_settings(settings)) as api:
        keys = api.worker.app.keys
        assert keys is not None
        alpha, beta = _registry()
        lifecycle = [*alpha.events, *beta.events]
        publish(kafka_bootstrap, topics.key_events, lifecycle)
        await eventually(lambda: keys.processed == len(lifecycle), 30, "the key events")
        assert keys.anomalies == 0

        produce(kafka_bootstrap, topics.requests, batches(events, 60))
        await wait_for_events(api.worker, len(events))
        # The late key is created now, after its requests landed, within their grace.
        publish(kafka_bootstrap, topics.key_events, [alpha.create_key(LATE)])
        await eventually(lambda: keys.processed == len(lifecycle) + 1, 30, "the late key")

        await _counted(api, SENT[(ALPHA, UNKNOWN)], SENT[(ALPHA, BETA_KEY)])

        # The reads: alpha's total is its registered keys' events, the sum of its listing.
        mine = {OWNED[0], OWNED[1], LATE}
        truth = usage_truth([e for e in events if e.account_id == ALPHA and e.key_id in mine])
        usage = (await api.client.get("/usage?window=30d", headers=api.auth("alpha_ro"))).json()
        assert _counters(usage["total"]) == _truth_counters(truth)
        listing = (await api.client.get("/api-keys", headers=api.auth("alpha_ro"))).json()["data"]
        assert {k["key_id"] for k in listing} == mine
        assert sum(k["requests_30d"] for k in listing) == usage["total"]["requests"]
        assert {k["key_id"]: k["requests_30d"] for k in listing} == {
            k: SENT[(ALPHA, k)] for k in mine
        }
        assert {t["key_id"]: t["requests"] for t in usage["top_keys"]} == {
            k: SENT[(ALPHA, k)] for k in mine
        }
        beta = (await api.client.get("/usage?window=24h", headers=api.auth("beta_full"))).json()
        assert beta["total"]["requests"] == SENT[(BETA, BETA_KEY)]

        # More of the same: each pair's one row follows its running total.
        more = _more(now, ALPHA, UNKNOWN, 10) + _more(now, ALPHA, BETA_KEY, 5)
        produce(kafka_bootstrap, topics.requests, batches(more, 60))
        await wait_for_events(api.worker, len(events) + len(more))
        await _counted(api, SENT[(ALPHA, UNKNOWN)] + 10, SENT[(ALPHA, BETA_KEY)] + 5)

    # A restart goes on from what was recorded: the same metric, nothing recorded again.
    async with serving(api.settings) as again:
        attribution = _attribution(again.worker)
        await eventually(lambda: attribution.stats.checks >= 1, 30, "a check after the restart")
        await _counted(again, SENT[(ALPHA, UNKNOWN)] + 10, SENT[(ALPHA, BETA_KEY)] + 5)
        assert attribution.stats.findings == 0
