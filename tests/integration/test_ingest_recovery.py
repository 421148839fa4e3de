"""Per-partition recovery with several workers, on the real broker and chDB: one worker
dies after the write-ahead row of a block spanning two partitions, another writes after
it (its rows are the newest), and the worker that takes the dead one's partitions over
re-applies that block whole under its token; once, whatever assignments follow.

Two workers cannot share one chDB directory, so the workers here are three store
instances (three writers) on one client, as workers sharing a ClickHouse server are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from kafka import KafkaProducer

from projections.writers import ClickHouseIngestStore
from schemas.requests import RequestCompleted
from schemas.topics import TopicNames
from streams.worker.ingest_agent import IngestAgent
from streams.worker.ingest_plan import IngestLimits, plan_ingest
from streams.worker.kafka_ranges import read_ranges
from streams.worker.ports import OffsetRange
from tests.fakes.streams import MemoryDeadLetters
from tests.integration.ingest_helpers import batches

pytestmark = pytest.mark.clickhouse

LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
PER_RECORD = 5


def _produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> int:
    """`per_partition[p]` records of `PER_RECORD` events into partition p; the events."""
    now = datetime.now(UTC).replace(microsecond=0)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    total = 0
    try:
        futures = []
        for p, n in per_partition.items():
            events = [
                RequestCompleted(
                    occurred_at=now - timedelta(seconds=i),
                    key_id=f"key_rec{p}{i % 3:03d}",
                    account_id="acc_recovery",
                    method="GET",
                    route="/v1/r",
                    status=200,
                    latency_ms=1.0,
                    client_ip="192.0.2.9",
                    bytes_out=10,
                )
                for i in range(n * PER_RECORD)
            ]
            total += len(events)
            futures += [producer.send(topic, v, partition=p) for v in batches(events, PER_RECORD)]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()
    return total


def _counts(client: Client) -> tuple[int, int, int]:
    raw = client.query("SELECT count() FROM requests_raw").result_rows[0][0]
    (rollup,) = client.query(
        "SELECT sum(requests) FROM usage_rollup WHERE tier = 'minute'"
    ).result_rows[0]
    (last_used,) = client.query("SELECT sum(requests) FROM key_last_used").result_rows[0]
    return int(raw), int(rollup or 0), int(last_used or 0)


def _agent(store: ClickHouseIngestStore, bootstrap: str, topic: str) -> IngestAgent:
    return IngestAgent(topic, bootstrap, store, MemoryDeadLetters(), LIMITS)


async def test_a_block_half_landed_by_a_dead_worker_is_completed_once(
    migrated_client: Client, kafka_bootstrap: str, topics: TopicNames
) -> None:
    topic = topics.requests
    total = _produce(kafka_bootstrap, topic, {0: 3, 1: 2, 2: 4})
    other = _agent(ClickHouseIngestStore(migrated_client), kafka_bootstrap, topic)
    taker = _agent(ClickHouseIngestStore(migrated_client), kafka_bootstrap, topic)
    try:
        await other.recover()  # both started before (recovering all partitions: none)
        await taker.recover()
        # worker 1 owned partitions 0 and 1: its block of both got its write-ahead row,
        # then the worker died before the insert
        dead = ClickHouseIngestStore(migrated_client)
        ranges = [OffsetRange(0, 0, 2), OffsetRange(1, 0, 1)]
        records = read_ranges(kafka_bootstrap, topic, ranges)
        (block,) = plan_ingest(topic, records, {}, LIMITS).blocks
        dead._log(topic, block.token, block.ranges, block.count, block.max_occurred_at_ms)

        # worker 2 keeps writing its partition 2 after it: its row is the newest of the
        # log (re-applying only the newest row, as recovery did before, loses the block)
        await other.process(read_ranges(kafka_bootstrap, topic, [OffsetRange(2, 0, 3)]))
        assert _counts(migrated_client) == (4 * PER_RECORD,) * 3

        # worker 3 is assigned the dead worker's partition 0: the block is re-applied
        # whole (partition 1's records too), under its own token
        taker.mark_stale([0])
        await taker.recover()
        assert taker.stats.recovered_blocks == 1
        assert _counts(migrated_client) == (total,) * 3
        assert taker.watermarks == {0: 2, 1: 1, 2: 3}

        # later assignments (partition 1 moves, everyone recovers) re-apply nothing
        taker.mark_stale([1])
        await taker.recover()
        assert taker.stats.recovered_blocks == 1
        # worker 2 recovers every partition: a marker row first says its own block
        # landed, so nothing is re-applied
        other.mark_stale()
        await other.recover()
        assert other.stats.recovered_blocks == 0
        assert _counts(migrated_client) == (total,) * 3
        # records re-read below the watermarks are skipped: still once
        await taker.process(read_ranges(kafka_bootstrap, topic, ranges))
        assert taker.stats.skipped_records == 5
        assert _counts(migrated_client) == (total,) * 3
    finally:
        other.close()
        taker.close()
