"""`keypulse replay` rebuilds the projections from Kafka with the same query results and
the same rows: identities and times come from the records (never from the worker's clock
or a random id), and the time bounds follow each record's Kafka timestamp, so rows a
clock-based check would judge differently are decided the same live and in the replay."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from uuid import uuid4

import pytest
from kafka import KafkaProducer
from rich.console import Console

from infra.clickhouse import make_client
from infra.settings import Settings
from infra.tools.replay import run_replay
from infra.wiring import running_worker
from projections.queries import Usage, UsageQueries
from projections.windows import Window
from schemas.codec import encode
from schemas.keys import KeyEventModel, KeyType
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.topics import TopicNames
from schemas.utc import to_epoch_ms
from tests.eventually import eventually
from tests.integration.ingest_helpers import batches, produce, wait_for_events, worker_settings
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_replay"
KEYS = [f"key_replay{i:04d}" for i in range(5)]


def _traffic(rng: random.Random, now: datetime, n: int) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            occurred_at=now - timedelta(seconds=rng.uniform(0, 20 * 86400)),
            key_id=rng.choice(KEYS),
            account_id=ACCOUNT,
            method="GET",
            route="/v1/x",
            status=rng.choice([200, 200, 404, 500]),
            latency_ms=rng.uniform(1, 300),
            client_ip=f"192.0.2.{rng.randint(1, 9)}",
        )
        for _ in range(n)
    ]


def _lifecycle() -> tuple[list[KeyEventModel], int]:
    """The account's key events: its keys created, renamed, revoked, with two events the
    fold refuses between them (a stale writer's rename and a create over the plan's
    limit); returns the events and how many are refused."""
    chain = Chain(ACCOUNT, Plan.FREE)
    for i, key in enumerate(KEYS):
        chain.create_key(key, f"k{i}", KeyType.TEST)
    renamed = chain.rename(KEYS[0], "renamed")
    stale = renamed.model_copy(update={"event_id": uuid4(), "name": "stale writer"})
    over = Chain(ACCOUNT, Plan.FREE)
    over.events = list(chain.events)
    sixth = over.create_key("key_replayover", key_type=KeyType.TEST)  # Free: 5 test keys
    revoked = chain.revoke(KEYS[1])  # the same seq as the refused create: applied
    return [*chain.events[:-2], renamed, stale, sixth, revoked], 2


_REGISTRY_TABLES = {
    "keys": "account_id, key_id",
    "accounts": "account_id",
    "key_audit": "account_id, seq",
    "key_anomalies": "account_id, key_id, event_id",
}
"""The key registry projection, every row (compared whole before and after the replay)."""


def _counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """Exact counters only: latency digests merged from other insert blocks may differ
    in the last digits, so percentiles are compared with a tolerance separately."""
    return (usage.requests, usage.errors_4xx, usage.errors_5xx, usage.renders, usage.bytes_out)


def _percentiles(settings: Settings, now: datetime) -> list[float]:
    client = make_client(settings)
    try:
        total = UsageQueries(client).account_usage(ACCOUNT, Window.D30, now).total
    finally:
        client.close()
    return [total.p50_ms or 0.0, total.p95_ms or 0.0, total.p99_ms or 0.0]


def _produce_stamped(bootstrap: str, topic: str, value: bytes, at: datetime) -> None:
    """One record whose Kafka timestamp is `at` (as a producer with a slow clock sends)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, value, timestamp_ms=to_epoch_ms(at)).get(timeout=60)
    finally:
        producer.close()


def _stamped_traffic(rng: random.Random, now: datetime) -> tuple[bytes, datetime, int]:
    """A batch stamped two days ago: one row 32 days before its record (kept), one 10
    minutes after it (rejected, though long past by the clock) and one 36 days before it
    (rejected). Returns the value, the stamp and the number of rows kept."""
    stamp = now - timedelta(days=2)
    rows = _traffic(rng, now, 3)
    times = [stamp - timedelta(days=32), stamp + timedelta(minutes=10), stamp - timedelta(days=36)]
    rows = [e.model_copy(update={"occurred_at": t}) for e, t in zip(rows, times, strict=True)]
    return encode(RequestBatch.from_events(rows)), stamp, 1


def _rows(settings: Settings) -> list[tuple[object, ...]]:
    """Every row of `requests_raw` with its identity, time and source position."""
    client = make_client(settings)
    try:
        rows = client.query(
            "SELECT event_id, occurred_at, key_id, status, latency_ms, client_ip, "
            "src_partition, src_offset FROM requests_raw ORDER BY event_id"
        ).result_rows
        return [tuple(row) for row in rows]
    finally:
        client.close()


def _snapshot(settings: Settings, now: datetime) -> object:
    client = make_client(settings)
    try:
        q = UsageQueries(client)
        return (
            q.list_keys(ACCOUNT, now),
            {(k, w): q.key_usage(ACCOUNT, k, w, now).requests for k in KEYS for w in Window},
            _counts(q.account_usage(ACCOUNT, Window.D30, now).total),
            client.query(
                "SELECT key_id, client_ip, requests FROM key_ip_seen FINAL ORDER BY 1, 2"
            ).result_rows,
            client.query("SELECT count(), uniqExact(event_id) FROM requests_raw").result_rows,
            q.audit_log(ACCOUNT, 100),
            q.account(ACCOUNT),
            *(
                client.query(f"SELECT * FROM {table} FINAL ORDER BY {order}").result_rows
                for table, order in _REGISTRY_TABLES.items()
            ),
        )
    finally:
        client.close()


async def test_replay_matches_live_projections(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    rng = random.Random(3)
    now = datetime.now(UTC)
    events = _traffic(rng, now, 6000)
    produce(kafka_bootstrap, topics.requests, [*batches(events, 700), b"garbage"])
    stamped, stamp, stamped_kept = _stamped_traffic(rng, now)
    _produce_stamped(kafka_bootstrap, topics.requests, stamped, stamp)
    lifecycle, refused = _lifecycle()
    publish(kafka_bootstrap, topics.key_events, lifecycle)
    produce(kafka_bootstrap, topics.key_events, [b"not a key event"], ACCOUNT.encode())

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await wait_for_events(worker, len(events) + stamped_kept, dead=3)
        keys_agent = worker.app.keys
        assert keys_agent is not None
        await eventually(
            lambda: keys_agent.processed >= len(lifecycle),
            timeout_s=60,
            what="every key event folded into the registry",
        )
        assert keys_agent.anomalies == refused
    live = _snapshot(settings, now)
    live_rows = _rows(settings)
    assert len(live_rows) == len(events) + stamped_kept
    live_percentiles = _percentiles(settings, now)

    console = Console(file=StringIO(), width=120)
    result = run_replay(settings, console)
    assert result.events == len(events) + stamped_kept
    assert result.rejected == 3  # the garbage record and two rows of the stamped batch
    assert result.key_events == len(lifecycle)
    assert result.key_events_refused == refused
    assert _snapshot(settings, now) == live
    assert _rows(settings) == live_rows
    assert _percentiles(settings, now) == pytest.approx(live_percentiles, rel=0.02)

    # The live materialized views keep feeding the swapped-in tables.
    more = _traffic(rng, now, 500)
    produce(kafka_bootstrap, topics.requests, batches(more, 250))
    async with running_worker(settings) as worker:
        await wait_for_events(worker, len(more))
    client = make_client(settings)
    try:
        total = len(events) + stamped_kept + len(more)
        assert client.query("SELECT count() FROM requests_raw").result_rows == [(total,)]
        assert client.query(
            "SELECT sum(requests) FROM usage_rollup WHERE tier = 'hour'"
        ).result_rows == [(total,)]
    finally:
        client.close()
