"""The `usage_spike` query against real chDB: six weeks of seeded hourly traffic of a few
keys, written through the real insert path (`ClickHouseIngestStore`, so the rollup views
run), and the answer compared with the truth computed here from the same events: per key
in scope the window's requests, each lag's estimate from the hour counts (requests x the
share of the hour inside the shifted window, computed for every (hour, lag) pair), and
the first hour with requests within the 42 days."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import SPIKE_LAG_DAYS, StatsQuery
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.writers import ClickHouseIngestStore
from schemas.alerts import RuleKind
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest

pytestmark = pytest.mark.clickhouse

DAY, HOUR = 86_400, 3_600
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
NOW = _TODAY + timedelta(hours=12, minutes=7, seconds=30)
"""Today (so the rollup's TTLs, which count from the wall clock, keep every row), at a
time whose windows do not start on an hour."""
END = int(NOW.timestamp()) // 60 * 60 + 60  # the windows end after 12:07
KEYS: dict[tuple[str, str], tuple[int, float]] = {
    # (account, key): (days of history before NOW, mean requests per hour)
    ("acc_alpha", "key_alpha1"): (45, 3.0),  # older than the 42 days: its first hour in range
    ("acc_alpha", "key_alpha2"): (20, 2.0),  # silent in the current window (see _events)
    ("acc_alpha", "key_alpha3"): (30, 2.0),  # not in the registry: not the account's key
    ("acc_beta", "key_beta01"): (10, 2.5),  # key-scoped, not registered: counted as it is
}
REGISTERED = (("acc_alpha", "key_alpha1", "Production web"), ("acc_alpha", "key_alpha2", ""))
KEY_COLUMNS = ["account_id", "key_id", "name", "key_type", "access", "status"]
KEY_COLUMNS += ["secret_hash", "hint", "created_at", "created_by", "updated_at", "seq"]


def _events(rng: random.Random) -> list[RequestCompleted]:
    events = []
    for (account, key), (days, rate) in KEYS.items():
        late = 3 * HOUR if key == "key_beta01" else rng.randrange(HOUR, 20 * HOUR)
        first = int(NOW.timestamp()) - days * DAY + late  # b1: after 12:07 on its first day
        for hour in range(first // HOUR * HOUR, END, HOUR):
            daily = 0.3 if (hour // HOUR) % 24 < 7 else 1.0
            n = sum(rng.random() < rate * daily / 6 for _ in range(6))
            if key == "key_alpha2" and hour >= END - 8 * HOUR:
                n = 0
            for _ in range(n):
                at_ms = (hour + rng.random() * HOUR) * 1000
                if at_ms / 1000 < first or at_ms / 1000 >= END:
                    continue
                events.append(
                    RequestCompleted(
                        occurred_at=datetime.fromtimestamp(int(at_ms) / 1000, UTC),
                        key_id=key,
                        account_id=account,
                        method="GET",
                        route="/v1/a",
                        status=200,
                        latency_ms=1.0,
                        client_ip="192.0.2.7",
                    )
                )
    return events


def _write(client: Client, events: list[RequestCompleted]) -> None:
    """Through the worker's insert path, 2,000 events a record (a handful of inserts)."""
    now_ms = to_epoch_ms(NOW)
    records = [
        SourceRecord(0, i, None, encode(RequestBatch.from_events(events[j : j + 2_000])), now_ms)
        for i, j in enumerate(range(0, len(events), 2_000))
    ]
    limits = IngestLimits(2_000, 1 << 24, max_future_ms=HOUR * 1000, max_age_ms=50 * DAY * 1000)
    plan = plan_ingest("t.requests", records, {}, limits)
    assert not plan.rejected and len(plan.blocks) <= 5
    store = ClickHouseIngestStore(client)
    for block in plan.blocks:
        store.write(block)


def _register(client: Client) -> None:
    at = NOW - timedelta(days=50)
    rows = [
        [a, k, name, "live", "full", "active", "sha256:" + "0" * 64, "pk_live_abcd", at, "t", at, 1]
        for a, k, name in (*REGISTERED, ("acc_alpha", "key_alpha4", "Never used"))
    ]
    client.insert("keys", rows, column_names=KEY_COLUMNS)


def _truth(
    events: list[RequestCompleted], window_s: int, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, list[float | None], int | None]]:
    """(current, lags, history_start) per key with anything, as the reader defines them:
    history_start is the first day with requests within the 42 days; a lag is None unless
    its window ends after the first hour with requests among the hours read (those
    overlapping a shifted window, and the window's whole hours) or after the end of that
    first day."""
    start = END - window_s
    days_from = (start - SPIKE_LAG_DAYS * DAY) // DAY * DAY
    shifted = [(start - d * DAY, END - d * DAY) for d in range(1, SPIKE_LAG_DAYS + 1)]

    def read(b: int) -> bool:
        whole = start <= b and b + HOUR <= END
        return whole or any(b < hi and b + HOUR > lo for lo, hi in shifted)

    current: Counter[tuple[str, str]] = Counter()
    hours: dict[tuple[str, str], Counter[int]] = {p: Counter() for p in pairs}
    for e in events:
        pair = (e.account_id, e.key_id)
        if pair not in pairs:
            continue
        t = e.occurred_at.timestamp()
        current[pair] += start <= t < END
        hours[pair][int(t) // HOUR * HOUR] += 1
    truth = {}
    for pair in pairs:
        days = [b // DAY * DAY for b in hours[pair] if days_from <= b < END]
        first_day = min(days) if days else None
        first_hour = min((b for b in hours[pair] if read(b)), default=None)
        known = [t for t in (first_hour, first_day + DAY if first_day else None) if t]
        since = min(known) if known else None
        lags: list[float | None] = []
        for lo, hi in shifted:
            if since is None or hi <= since:
                lags.append(None)
                continue
            share = sum(
                n * max(0, min(b + HOUR, hi) - max(b, lo)) / HOUR for b, n in hours[pair].items()
            )
            lags.append(share)
        if current[pair] or first_day is not None:
            truth[pair] = (current[pair], lags, first_day)
    return truth


def _compare(got: dict[Any, Any], truth: dict[Any, Any]) -> None:
    assert set(got) == set(truth)
    for pair, (current, lags, first) in truth.items():
        spike = got[pair].spike
        assert spike is not None, pair
        assert got[pair].requests == spike.current == current, pair
        assert spike.history_start == datetime.fromtimestamp(first, UTC), pair
        assert len(spike.lags) == SPIKE_LAG_DAYS
        for d, (g, t) in enumerate(zip(spike.lags, lags, strict=True), start=1):
            assert (g is None) == (t is None), (pair, d)
            assert g is None or t is None or g == pytest.approx(t, abs=1e-9), (pair, d)


def test_spike_history_per_key_in_one_query(migrated_client: Client) -> None:
    rng = random.Random(14)
    events = _events(rng)
    _write(migrated_client, events)
    _register(migrated_client)
    queries = ClickHouseEvaluationQueries(migrated_client, "t.requests")
    in_scope = {
        ("acc_alpha", "key_alpha1"),
        ("acc_alpha", "key_alpha2"),
        ("acc_beta", "key_beta01"),
    }
    for window_s in (3_600, 900, 21_600):  # 6 h: the longest window a rule may have
        query = StatsQuery(
            RuleKind.USAGE_SPIKE, window_s, ("acc_alpha",), (("acc_beta", "key_beta01"),)
        )
        got = queries.window_stats(query, NOW)
        truth = _truth(events, window_s, in_scope)
        _compare(got, truth)
    # The seed gives what the cases need: a1 and b1 send in the window, a2 does not; b1's
    # history is short (lags beyond it are None), a1's reaches past the 42 days. b1's first
    # day has a window before its first request: None, as the window before that day.
    a1, a2, b1 = (truth[p] for p in sorted(in_scope))
    assert a1[0] > 0 and b1[0] > 0 and a2[0] == 0
    assert all(v is not None for v in a1[1]) and sum(v is None for v in b1[1]) >= 30
    assert b1[2] is not None and b1[1][(END - b1[2]) // DAY - 1] is None
    spike_a1, spike_b1 = (
        got[("acc_alpha", "key_alpha1")].spike,
        got[("acc_beta", "key_beta01")].spike,
    )
    assert spike_a1 is not None and spike_a1.name == "Production web"
    assert spike_b1 is not None and spike_b1.name is None
