"""The `unknown_ip` read against real chDB: ~20 days of request events from seeded random
client IPs, written through the real insert path (`ClickHouseIngestStore`, batched
blocks; `key_ip_day_mv` fills `key_ip_day`), answered by `unknown_ip_stats` at address
and prefix granularity and compared with the truth computed here from the same events with
`ipaddress`, under the reader's documented semantics (whole-day lookback; a day's first
request of an address at or after the window's end is not seen). Also: hand-built
histories for the prefix cases, and migration 0017's backfill from `requests_raw`."""

from __future__ import annotations

import importlib
import ipaddress
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import AddressHistory, NewAddress, QueryOptions, StatsQuery, WindowStats
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.migration_context import MigrationContext
from projections.writers import ClickHouseIngestStore
from schemas.alerts import IpGranularity, RuleKind
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest

pytestmark = pytest.mark.clickhouse

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
"""The evaluation day: two days back, so every event (up to a day later) lies in the past
and within the tables' TTLs."""
KEYS = {
    "acc_aaa": ["key_aaaaa1", "key_aaaaa2", "key_aaaaa3", "key_aaaaa4"],
    "acc_bbb": ["key_bbbbb1", "key_bbbbb2"],
}
REGISTERED = {  # key_aaaaa3 is not the account's in the registry; key_aaaaa4 is new
    ("acc_aaa", "key_aaaaa1"): ("Production web", ["10.0.0.0/8"]),
    ("acc_aaa", "key_aaaaa2"): ("", []),
    ("acc_aaa", "key_aaaaa4"): ("Fresh", []),
    ("acc_bbb", "key_bbbbb1"): ("Batch", []),
    ("acc_bbb", "key_bbbbb2"): ("Other", []),
}
SCOPE = (("acc_aaa",), (("acc_bbb", "key_bbbbb1"),))
"""acc_aaa account-wide, acc_bbb's key_bbbbb1 alone."""


def _pool(rng: random.Random, networks: int) -> list[str]:
    """Client IPs from a few /24 and /48 networks, so that addresses share them often (one
    IPv4-mapped IPv6, one in key_aaaaa1's allow-list 10.0.0.0/8)."""
    v4 = [f"198.51.{100 + rng.randrange(networks)}.{rng.randrange(1, 40)}" for _ in range(6)]
    v6 = [f"2001:db8:{1 + rng.randrange(networks):x}:{rng.randrange(3):x}::{rng.randrange(1, 9)}"]
    mapped = [f"::ffff:203.0.{113 + rng.randrange(networks)}.{rng.randrange(1, 9)}"]
    return v4 + v6 * 2 + mapped + [f"10.{rng.randrange(4)}.0.{rng.randrange(1, 5)}"]


def _events(rng: random.Random) -> list[RequestCompleted]:
    events = []

    def add(account: str, key: str, at: datetime, ip: str) -> None:
        events.append(
            RequestCompleted(
                occurred_at=at,
                key_id=key,
                account_id=account,
                method="GET",
                route="/v1/things",
                status=200,
                latency_ms=1.0,
                client_ip=ipaddress.ip_address(ip),
                bytes_out=0,
                is_render=False,
                watermarked=False,
            )
        )

    for account, keys in KEYS.items():
        for key in keys:
            usual = _pool(rng, 2)
            days = 2 if key == "key_aaaaa4" else 20
            for d in range(days, -1, -1):
                for _ in range(rng.randrange(5, 25)):
                    at = DAY - timedelta(days=d, milliseconds=rng.randrange(-86_400_000, 0))
                    add(account, key, at, rng.choice(usual))
            fresh = _pool(rng, 12)  # mostly never seen before: new on DAY
            for _ in range(rng.randrange(6, 24)):
                at = DAY + timedelta(milliseconds=rng.randrange(-3_600_000, 13 * 3_600_000))
                add(account, key, at, rng.choice(fresh + usual))
            later = f"192.0.2.{rng.randrange(1, 200)}"  # only after the windows end
            for _ in range(3):
                at = DAY + timedelta(hours=13, milliseconds=rng.randrange(0, 30 * 3_600_000))
                add(account, key, at, later)
    return events


def _write(client: Client, events: list[RequestCompleted]) -> None:
    """Batched records -> planned blocks -> `ClickHouseIngestStore.write`, as the worker."""
    wall = to_epoch_ms(datetime.now(UTC))
    records = [
        SourceRecord(0, offset, None, encode(RequestBatch.from_events(events[i : i + 500])), wall)
        for offset, i in enumerate(range(0, len(events), 500))
    ]
    limits = IngestLimits(600, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
    plan = plan_ingest("t.requests", records, {}, limits)
    assert not plan.rejected and len(plan.blocks) > 1
    store = ClickHouseIngestStore(client)
    for block in plan.blocks:
        store.write(block)


def _registry(client: Client) -> None:
    at = DAY - timedelta(days=30)
    rows = [
        [a, k, name, "live", "full", "active", "sha256:" + "0" * 64, "pk", at, "t", at, cidrs, 1]
        for (a, k), (name, cidrs) in REGISTERED.items()
    ]
    columns = ["account_id", "key_id", "name", "key_type", "access", "status", "secret_hash"]
    columns += ["hint", "created_at", "created_by", "updated_at", "allowed_cidrs", "seq"]
    client.insert("keys", rows, column_names=columns)


def subject_of(ip: str, prefix: bool) -> str:
    """The client (IPv4-mapped IPv6 as IPv4), or its /24 or /48 network."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not prefix:
        return str(address)
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@dataclass(frozen=True)
class Case:
    now: datetime
    window_s: int
    lookback_days: int
    granularity: IpGranularity


def _truth(events: list[RequestCompleted], case: Case) -> dict[tuple[str, str], WindowStats]:
    end = case.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(seconds=case.window_s)
    since = start.date() - timedelta(days=case.lookback_days)
    until = (end - timedelta(milliseconds=1)).date()
    prefix = case.granularity is IpGranularity.PREFIX
    wide, (named,) = {"acc_aaa"}, SCOPE[1]

    def ms(t: datetime) -> datetime:
        return t.replace(microsecond=t.microsecond // 1000 * 1000)

    day_first: dict[tuple[str, str, date], datetime] = {}
    for e in events:
        cell = (e.key_id, str(e.client_ip), e.occurred_at.date())
        day_first[cell] = min(day_first.get(cell, e.occurred_at), e.occurred_at)
    history: dict[tuple[str, str], datetime] = {}
    uses: dict[tuple[str, str], dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        pair, ip, day = (e.account_id, e.key_id), str(e.client_ip), e.occurred_at.date()
        if not (e.account_id in wide and pair in REGISTERED) and pair != named:
            continue
        if day > until or day_first[(e.key_id, ip, day)] >= end:
            continue  # not seen by a read at `now`
        history[pair] = min(history.get(pair, e.occurred_at), e.occurred_at)
        if day >= since:
            uses[pair][subject_of(ip, prefix)].append(ms(e.occurred_at))
    truth = {}
    for pair, subjects in uses.items():
        new = sorted(
            (NewAddress(s, min(ts), max(ts), len(ts)) for s, ts in subjects.items()),
            key=lambda a: (a.first_seen, a.subject),
        )
        new = [a for a in new if a.first_seen >= start]
        if not new:
            continue
        name, cidrs = REGISTERED.get(pair, ("", []))
        addresses = AddressHistory(
            new=tuple(new),
            known=len(subjects) - len(new),
            history_start=ms(history[pair]),
            allowed_cidrs=tuple(cidrs),
            name=name or None,
        )
        truth[pair] = WindowStats(sum(a.requests for a in new), addresses=addresses)
    return truth


CASES = [
    Case(DAY + timedelta(minutes=40, seconds=30), 3_600, 14, IpGranularity.ADDRESS),
    Case(DAY + timedelta(minutes=40, seconds=30), 3_600, 14, IpGranularity.PREFIX),
    Case(DAY + timedelta(hours=12, minutes=7, seconds=30), 6 * 3_600, 7, IpGranularity.ADDRESS),
    Case(DAY + timedelta(hours=12, minutes=7, seconds=30), 6 * 3_600, 7, IpGranularity.PREFIX),
    Case(DAY + timedelta(hours=6, seconds=1), 12 * 3_600, 1, IpGranularity.PREFIX),
]


def test_new_and_known_addresses_per_key_match_the_events(migrated_client: Client) -> None:
    events = _events(random.Random(1417))
    _write(migrated_client, events)
    _registry(migrated_client)
    queries = ClickHouseEvaluationQueries(migrated_client, "t.requests")
    fired = 0
    for case in CASES:
        options = QueryOptions(case.lookback_days * 86_400, case.granularity)
        query = StatsQuery(RuleKind.UNKNOWN_IP, case.window_s, *SCOPE, options=options)
        truth = _truth(events, case)
        assert queries.window_stats(query, case.now) == truth, case
        fired += len(truth)
    assert fired >= 8  # the cases do have new addresses to find


# --------------------------------------------------------------------------- hand-built


def _raw(client: Client, rows: list[tuple[str, datetime, str]]) -> None:
    columns = ["event_id", "occurred_at", "account_id", "key_id", "method", "route"]
    columns += ["status", "latency_ms", "client_ip", "bytes_out", "is_render", "watermarked"]
    columns += ["src_partition", "src_offset"]
    client.insert(
        "requests_raw",
        [
            [uuid4(), at, "acc_hhh", key, "GET", "/", 200, 1.0, ip, 0, False, False, 0, i]
            for i, (key, at, ip) in enumerate(rows)
        ],
        column_names=columns,
    )


def test_prefix_granularity_on_hand_built_histories(migrated_client: Client) -> None:
    now = DAY + timedelta(hours=12, minutes=7, seconds=30)
    old, recent = now - timedelta(days=5), now - timedelta(minutes=20)
    _raw(
        migrated_client,
        [
            ("key_hhhhhh", old, "198.51.100.7"),
            ("key_hhhhhh", old, "2001:db8:1:2::1"),
            ("key_hhhhhh", old - timedelta(days=20), "203.0.113.5"),  # before the lookback
            ("key_hhhhhh", recent, "198.51.100.99"),  # a new address in a known /24
            ("key_hhhhhh", recent, "2001:db8:1:ffff::9"),  # in a known /48
            ("key_hhhhhh", recent + timedelta(minutes=1), "2001:db8:2::1"),  # a new /48
            ("key_hhhhhh", recent + timedelta(minutes=2), "203.0.113.6"),  # /24 not used lately
            ("key_hhhhhh", recent + timedelta(minutes=3), ""),  # no client IP: ignored
        ],
    )

    def new(granularity: IpGranularity) -> tuple[tuple[str, ...], int]:
        query = StatsQuery(
            RuleKind.UNKNOWN_IP,
            3_600,
            key_pairs=(("acc_hhh", "key_hhhhhh"),),
            options=QueryOptions(14 * 86_400, granularity),
        )
        answer = ClickHouseEvaluationQueries(migrated_client, "t").window_stats(query, now)
        history = answer[("acc_hhh", "key_hhhhhh")].addresses
        assert history is not None and history.history_start == old - timedelta(days=20)
        return tuple(a.subject for a in history.new), history.known

    assert new(IpGranularity.ADDRESS) == (
        ("198.51.100.99", "2001:db8:1:ffff::9", "2001:db8:2::1", "203.0.113.6"),
        2,
    )
    assert new(IpGranularity.PREFIX) == (("2001:db8:2::/48", "203.0.113.0/24"), 2)


# --------------------------------------------------------------------------- migration


def _day_rows(client: Client) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(r)
        for r in client.query(
            "SELECT account_id, key_id, day, client_ip, min(first_seen), max(last_seen), "
            "sum(requests) FROM key_ip_day GROUP BY account_id, key_id, day, client_ip"
        ).result_rows
    )


def test_migration_backfills_from_requests_raw_once(migrated_client: Client) -> None:
    events = _events(random.Random(7))
    _write(migrated_client, events)
    fed = _day_rows(migrated_client)  # what the view wrote
    cells = {(e.account_id, e.key_id, e.occurred_at.date(), str(e.client_ip)) for e in events}
    assert {r[:4] for r in fed} == cells
    module = importlib.import_module("projections.migrations.0017_key_ip_day")

    def run() -> None:
        tables = migrated_client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        )
        ctx = MigrationContext(existing_tables=frozenset(str(r[0]) for r in tables.result_rows))
        for statement in module.statements(ctx):
            migrated_client.command(statement)

    migrated_client.command("DROP VIEW key_ip_day_mv")
    migrated_client.command("DROP TABLE key_ip_day")
    migrated_client.command("CREATE TABLE key_ip_day_0017 (x UInt8) ENGINE = Memory")  # a crash
    run()
    assert _day_rows(migrated_client) == fed
    run()  # applied again: nothing copied twice
    assert _day_rows(migrated_client) == fed
    _raw(migrated_client, [("key_after1", DAY, "192.0.2.1")])  # the view feeds it again
    assert [r[1:4] for r in _day_rows(migrated_client) if r[1] == "key_after1"] == [
        ("key_after1", DAY.date(), "192.0.2.1")
    ]
