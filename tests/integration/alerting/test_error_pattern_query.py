"""The `error_pattern` query against real chDB: ~8 days of seeded requests with mixed
statuses through the real insert path (`plan_ingest` -> `ClickHouseIngestStore`, so the
materialized views fill `usage_rollup` and `key_status_rollup`), the answer compared with
the truth computed here from the same events (window exact to the minute, baseline the
lookback of whole hours before the window's first hour, for classes all, 5xx and 401)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import ErrorHistory, QueryOptions, StatsQuery, WindowStats
from projections.detector_queries.error_pattern import error_pattern_stats
from projections.writers import ClickHouseIngestStore
from schemas.alerts import ErrorClass, RuleKind
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest

pytestmark = pytest.mark.clickhouse

LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
TOPIC = "ep.requests"
NAMES = {
    ("acc_ep1", "key_ep1aaa"): "Production web",
    ("acc_ep1", "key_ep1bbb"): "Batch",
    ("acc_ep1", "key_ep1ccc"): "New mobile",
    ("acc_ep1", "key_ep1eee"): "Quiet",
    ("acc_ep2", "key_ep2aaa"): "Partner",
    ("acc_ep2", "key_ep2bbb"): "Other",
}
"""The registry; key_ep1ddd sends as acc_ep1 without a registry row (never counted)."""
STATUSES = (200, 201, 400, 401, 403, 404, 429, 500, 503)
TRAFFIC = {
    # (account, key): (first and last hour back, weights of STATUSES, burst statuses)
    ("acc_ep1", "key_ep1aaa"): (192, 0, (80, 5, 2, 3, 1, 2, 1, 1, 1), (401,) * 5 + (200,)),
    ("acc_ep1", "key_ep1bbb"): (192, 0, (85, 5, 1, 1, 1, 1, 1, 3, 2), (500, 503, 200)),
    ("acc_ep1", "key_ep1ccc"): (30, 0, (90, 0, 2, 4, 0, 2, 0, 1, 1), (200, 429)),
    ("acc_ep1", "key_ep1ddd"): (100, 0, (50, 0, 0, 40, 0, 0, 0, 10, 0), (401,)),
    ("acc_ep1", "key_ep1eee"): (150, 24, (60, 0, 0, 20, 0, 0, 0, 20, 0), ()),
    ("acc_ep2", "key_ep2aaa"): (192, 0, (70, 0, 0, 15, 5, 0, 0, 10, 0), (401, 200)),
    ("acc_ep2", "key_ep2bbb"): (192, 0, (70, 0, 0, 15, 5, 0, 0, 10, 0), (401,)),
}


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _events(now: datetime, rng: random.Random) -> list[RequestCompleted]:
    """Hourly traffic per key from its first hour back, a burst in the last 20 minutes
    (before `now`), and a few events just around the window's and baseline's edges."""
    out = []

    def event(account: str, key: str, at: datetime, status: int) -> None:
        out.append(
            RequestCompleted(
                occurred_at=at,
                key_id=key,
                account_id=account,
                method="GET",
                route="/v1/things",
                status=status,
                latency_ms=12.5,
                client_ip="192.0.2.7",
                bytes_out=100,
            )
        )

    top = _floor_hour(now)
    for (account, key), (first, last, weights, burst) in TRAFFIC.items():
        for h in range(first, last - 1, -1):
            hour = top - timedelta(hours=h)
            for _ in range(rng.randint(2, 12)):
                at = hour + timedelta(milliseconds=rng.randrange(3_600_000))
                if at <= now:
                    event(account, key, at, rng.choices(STATUSES, weights)[0])
        for _ in range(rng.randint(40, 120) if burst else 0):
            at = now - timedelta(milliseconds=rng.randrange(1_200_000))
            event(account, key, at, rng.choice(burst))
        for minute in (-16, -15, -14, -1, 0) if last == 0 else ():  # a 15m window's edges
            at = _floor_minute(now) + timedelta(minutes=minute, seconds=rng.randrange(60))
            if at <= now:
                event(account, key, at, rng.choice(STATUSES))
    return out


def _ingest(client: Client, events: list[RequestCompleted], now: datetime) -> None:
    """Batches of 500 events, as records of one partition, through the worker's writer;
    every block written twice, as recovery re-applies an insert (it must land once)."""
    records = [
        SourceRecord(
            0,
            offset,
            None,
            encode(RequestBatch.from_events(events[i : i + 500])),
            to_epoch_ms(now),
        )
        for offset, i in enumerate(range(0, len(events), 500))
    ]
    plan = plan_ingest(TOPIC, records, {}, LIMITS)
    assert not plan.rejected
    store = ClickHouseIngestStore(client)
    for block in [*plan.blocks, *plan.blocks]:
        store.write(block)


def _in_class(status: int, cls: ErrorClass) -> bool:
    if cls is ErrorClass.ALL:
        return status >= 400
    if cls is ErrorClass.CLIENT:
        return 400 <= status < 500
    if cls is ErrorClass.SERVER:
        return status >= 500
    return status == int(cls.value)


def _truth(
    events: list[RequestCompleted],
    scope: set[tuple[str, str]],
    cls: ErrorClass,
    window_s: int,
    lookback_s: int,
    now: datetime,
) -> dict[tuple[str, str], WindowStats]:
    end = _floor_minute(now) + timedelta(minutes=1)
    start = end - timedelta(seconds=window_s)
    b_end = _floor_hour(start)
    b_start = b_end - timedelta(seconds=lookback_s)
    figures: dict[tuple[str, str], list[int]] = {}
    first: dict[tuple[str, str], datetime] = {}
    for e in events:
        pair = (e.account_id, e.key_id)
        if pair not in scope:
            continue
        f = figures.setdefault(pair, [0, 0, 0, 0])
        error = int(_in_class(e.status, cls))
        if start <= e.occurred_at < end:
            f[0] += 1
            f[1] += error
        elif b_start <= e.occurred_at < b_end:
            f[2] += 1
            f[3] += error
            first[pair] = min(first.get(pair, e.occurred_at), e.occurred_at)
    out = {}
    for pair, (req, err, b_req, b_err) in figures.items():
        if req == 0:
            continue
        history = ErrorHistory(
            req,
            err,
            b_req,
            b_err,
            _floor_hour(first[pair]) if pair in first else None,
            NAMES.get(pair),
        )
        out[pair] = WindowStats(req, err, error_history=history)
    return out


def test_error_pattern_figures_per_key_in_one_query(migrated_client: Client) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(14)
    events = _events(now, rng)
    _ingest(migrated_client, events, now)
    migrated_client.insert(
        "keys",
        [[a, k, name, "active", 1] for (a, k), name in NAMES.items()],
        column_names=["account_id", "key_id", "name", "status", "seq"],
    )
    scope = {p for p in NAMES if p[0] == "acc_ep1"} | {("acc_ep2", "key_ep2aaa")}
    cases = [
        (ErrorClass.ALL, 900, 7 * 86_400),
        (ErrorClass.SERVER, 900, 7 * 86_400),
        (ErrorClass.UNAUTHORIZED, 900, 7 * 86_400),
        (ErrorClass.UNAUTHORIZED, 3 * 3_600, 2 * 86_400),  # hour rows inside the window
    ]
    for cls, window_s, lookback_s in cases:
        options = QueryOptions(lookback_s, status_class=cls)
        query = StatsQuery(
            RuleKind.ERROR_PATTERN, window_s, ("acc_ep1",), (("acc_ep2", "key_ep2aaa"),), options
        )
        got = error_pattern_stats(migrated_client, query, now)
        truth = _truth(events, scope, cls, window_s, lookback_s, now)
        assert got == truth, (cls, window_s)
        assert set(truth) == scope - {("acc_ep1", "key_ep1eee")}  # eee: silent in the window
        histories = [s.error_history for s in truth.values() if s.error_history]
        assert all(h.baseline_requests > 0 for h in histories)
        assert any(h.errors > 0 for h in histories) and any(h.baseline_errors for h in histories)
    young = _truth(events, scope, ErrorClass.ALL, 900, 7 * 86_400, now)[("acc_ep1", "key_ep1ccc")]
    assert young.error_history is not None and young.error_history.history_start is not None
    assert now - young.error_history.history_start < timedelta(hours=32)  # 30 hours back
