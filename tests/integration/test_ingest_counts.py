"""Known traffic through Kafka and the worker gives exact counts per key and window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.clickhouse import make_client
from infra.wiring import running_worker
from projections.queries import EMPTY_USAGE, UsageQueries
from projections.windows import Window
from schemas.plans import Plan
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_counts"
KEYS = ["key_count0001", "key_count0002", "key_count0003"]
OTHER_ACCOUNT = "acc_other"


def _window_start(now: datetime, window: Window) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1) - window.length


def _rank_ok(values: list[float], estimate: float, q: float, tolerance: float = 0.03) -> bool:
    """t-digest tolerance: the estimate's rank lies within `tolerance` of the target rank."""
    ordered = sorted(values)
    below = sum(1 for v in ordered if v < estimate) / len(ordered)
    at_or_below = sum(1 for v in ordered if v <= estimate) / len(ordered)
    return below - tolerance <= q <= at_or_below + tolerance


async def test_exact_counts_per_key_and_window(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    events: list[RequestCompleted] = []
    for key in KEYS:
        for _ in range(3000):
            age = timedelta(seconds=rng.uniform(0, 33 * 86400))
            if rng.random() < 0.5:  # dense recent traffic so 24h has enough for percentiles
                age = timedelta(seconds=rng.uniform(0, 23 * 3600))
            events.append(
                RequestCompleted(
                    occurred_at=now - age,
                    key_id=key,
                    account_id=ACCOUNT,
                    method="GET",
                    route="/v1/render",
                    status=rng.choice([200, 200, 200, 201, 404, 429, 500, 503]),
                    latency_ms=round(rng.lognormvariate(3, 1), 3),
                    client_ip=f"198.51.100.{rng.randint(1, 20)}",
                    bytes_out=rng.randint(0, 5000),
                    is_render=rng.random() < 0.3,
                )
            )
    # Another account's traffic on a key id of ours must never leak into our answers.
    # Dated `now`: by default an event is dated when it is built, which may already be
    # the next minute, past the end of the windows asked for at `now`.
    events += [
        RequestCompleted(
            occurred_at=now,
            key_id=KEYS[0],
            account_id=OTHER_ACCOUNT,
            method="GET",
            route="/x",
            status=200,
            latency_ms=1.0,
            client_ip="192.0.2.1",
        )
        for _ in range(50)
    ]
    rng.shuffle(events)
    produce(kafka_bootstrap, topics.requests, batches(events, 2500))
    chain = Chain(ACCOUNT, Plan.PRO)
    for i, k in enumerate(KEYS):
        chain.create_key(k, f"key {i}")
    chain.revoke(KEYS[2])
    key_events = chain.events
    publish(kafka_bootstrap, topics.key_events, key_events)

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await wait_for_events(worker, len(events))
        keys_agent = worker.app.keys
        assert keys_agent is not None
        await eventually(
            lambda: keys_agent.processed >= len(key_events),
            timeout_s=60,
            what="every key event folded into the registry",
        )

    client = make_client(settings)
    try:
        queries = UsageQueries(client)
        for window in Window:
            start = _window_start(now, window)
            for key in KEYS:
                mine = [
                    e
                    for e in events
                    if e.key_id == key and e.account_id == ACCOUNT and e.occurred_at >= start
                ]
                usage = queries.key_usage(ACCOUNT, key, window, now)
                assert usage.requests == len(mine), (window, key)
                assert usage.errors_4xx == sum(400 <= e.status < 500 for e in mine)
                assert usage.errors_5xx == sum(e.status >= 500 for e in mine)
                assert usage.renders == sum(e.is_render for e in mine)
                assert usage.bytes_out == sum(e.bytes_out for e in mine)
                expected_rate = (usage.errors_4xx + usage.errors_5xx) / len(mine)
                assert usage.error_rate == expected_rate
                latencies = [e.latency_ms for e in mine]
                assert usage.p50_ms is not None and usage.p95_ms is not None
                assert usage.p99_ms is not None
                assert _rank_ok(latencies, usage.p50_ms, 0.50), (window, key, usage)
                assert _rank_ok(latencies, usage.p95_ms, 0.95), (window, key, usage)
                assert _rank_ok(latencies, usage.p99_ms, 0.99, tolerance=0.01)

        # The one-query summary answers exactly what three `key_usage` calls answer
        # (t-digest estimates may differ in merge order, so those are held to their ranks).
        for key in KEYS:
            summary = queries.key_summary(ACCOUNT, key, now)
            assert list(summary) == list(Window)
            for window, got in summary.items():
                one = queries.key_usage(ACCOUNT, key, window, now)
                counts = ("requests", "errors_4xx", "errors_5xx", "renders", "bytes_out")
                assert [getattr(got, c) for c in counts] == [getattr(one, c) for c in counts]
                start = _window_start(now, window)
                latencies = [
                    e.latency_ms
                    for e in events
                    if e.key_id == key and e.account_id == ACCOUNT and e.occurred_at >= start
                ]
                assert got.p95_ms is not None and _rank_ok(latencies, got.p95_ms, 0.95)
        assert queries.key_summary(ACCOUNT, "key_unknown01", now) == dict.fromkeys(
            Window, EMPTY_USAGE
        )

        listing = {row.key_id: row for row in queries.list_keys(ACCOUNT, now)}
        assert set(listing) == set(KEYS)
        assert listing[KEYS[2]].status == "revoked"
        assert listing[KEYS[0]].status == "active"
        start_24h = _window_start(now, Window.H24)
        assert listing[KEYS[1]].requests_24h == sum(
            e.key_id == KEYS[1] and e.account_id == ACCOUNT and e.occurred_at >= start_24h
            for e in events
        )
        newest = max(
            e.occurred_at for e in events if e.key_id == KEYS[0] and e.account_id == ACCOUNT
        )
        assert listing[KEYS[0]].last_used == newest

        other = queries.key_usage(OTHER_ACCOUNT, KEYS[0], Window.H24, now)
        assert other.requests == 50
        assert queries.list_keys(OTHER_ACCOUNT, now) == []

        series = queries.key_timeseries(ACCOUNT, KEYS[0], Window.H24, timedelta(hours=1), now)
        assert (
            sum(p.requests for p in series)
            == queries.key_usage(ACCOUNT, KEYS[0], Window.H24, now).requests
        )
        total = queries.account_usage(ACCOUNT, Window.D30, now)
        assert total.total.requests == sum(
            e.account_id == ACCOUNT and e.occurred_at >= _window_start(now, Window.D30)
            for e in events
        )
        assert [k for k, _ in total.top_keys] and total.top_keys[0][1] >= total.top_keys[-1][1]
    finally:
        client.close()
