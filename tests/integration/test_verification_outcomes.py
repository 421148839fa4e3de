"""Verification outcomes through the real path: `OutcomeRecorder` -> Kafka (requests
topic) -> the worker -> `verification_outcomes` in chDB, and `key_activity` answers last
used and last-used IP within seconds; delivered again to a worker, nothing is doubled."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.clickhouse import make_client
from infra.settings import Settings
from infra.wiring import running_worker
from projections.key_activity import KeyActivity, key_activity
from projections.writers import ClickHouseIngestStore
from schemas.topics import TopicNames
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.recorder_config import RecorderConfig
from streams.worker.ingest_agent import IngestAgent
from streams.worker.ingest_plan import IngestLimits, plan_ingest
from streams.worker.kafka_ranges import read_ranges
from streams.worker.ports import OffsetRange
from tests.eventually import eventually
from tests.integration.ingest_helpers import worker_settings

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_outcomes"
KEY, REVOKED = "key_outcome0001", "key_outcome0002"
LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)


class _NoDeadLetters:
    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        raise AssertionError("no dead letter expected")


def landed(settings: Settings) -> dict[tuple[str, str, str], int]:
    client = make_client(settings)
    try:
        rows = client.query(
            "SELECT outcome, key_id, client_ip, sum(count) FROM verification_outcomes "
            "GROUP BY outcome, key_id, client_ip"
        ).result_rows
    finally:
        client.close()
    return {(str(o), str(k), str(ip)): int(n) for o, k, ip, n in rows}


def redeliver(settings: Settings, topic: str, bootstrap: str) -> int:
    """Re-apply every recorded insert as recovery does; returns how many."""
    client = make_client(settings)
    store = ClickHouseIngestStore(client)
    agent = IngestAgent(topic, bootstrap, store, _NoDeadLetters(), LIMITS)
    try:
        rows = client.query(
            "SELECT partitions, start_offsets, end_offsets FROM ingest_batches "
            "WHERE topic = {t:String} AND NOT checkpoint",
            parameters={"t": topic},
        ).result_rows
        for parts, starts, ends in rows:
            ranges = [OffsetRange(*r) for r in zip(parts, starts, ends, strict=True)]
            records = read_ranges(bootstrap, topic, ranges)
            for planned in plan_ingest(topic, records, {}, LIMITS).planned:
                planned.block.ranges = ranges
                agent._write(planned)
        return len(rows)
    finally:
        agent.close()
        client.close()


def activity(settings: Settings, keys: list[str], at: datetime) -> dict[str, KeyActivity]:
    client = make_client(settings)
    try:
        return key_activity(client, ACCOUNT, keys, at)
    finally:
        client.close()


async def test_outcomes_land_once_and_answer_last_used(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    now = datetime.now(UTC)
    recorder = OutcomeRecorder(
        RecorderConfig(kafka_bootstrap, topics.requests, linger_ms=5), count_flush_ms=200
    )
    expected: dict[tuple[str, str, str], int] = {}  # (outcome, key, ip) -> verdicts

    def verdict(outcome: str, key: str | None, ip: str, at: datetime) -> None:
        recorder.record(outcome, key, ACCOUNT if key else None, ip, at)
        slot = (outcome, key or "", ip)
        expected[slot] = expected.get(slot, 0) + 1

    valid_at = [now - timedelta(minutes=20) + timedelta(seconds=i) for i in range(30)]
    for at in valid_at:
        verdict("valid", KEY, "192.0.2.1", at)
    minutes = len({at.replace(second=0, microsecond=0) for at in valid_at})
    for _ in range(5):
        verdict("revoked", REVOKED, "198.51.100.7", now - timedelta(seconds=30))
    for i in range(12):
        verdict("unknown", None, "203.0.113.66", now - timedelta(seconds=i))
    verdict("malformed", None, "203.0.113.66", now)
    assert recorder.flush(20)
    first = recorder.stats()
    # one valid count event per UTC minute, one event per other verdict
    assert first.sent == minutes + 5 + 12 + 1 and first.dropped == 0

    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)

    try:
        async with running_worker(settings) as worker:

            async def all_landed() -> bool:
                return await asyncio.to_thread(landed, settings) == expected

            await eventually(all_landed, timeout_s=30, what="every outcome")
            # A valid verification now is last used within seconds.
            began = time.monotonic()
            used_at = datetime.now(UTC)
            recorder.record("valid", KEY, ACCOUNT, "2001:db8::5", used_at)
            expected[("valid", KEY, "2001:db8::5")] = 1

            async def fresh() -> bool:
                got = await asyncio.to_thread(activity, settings, [KEY], datetime.now(UTC))
                return got[KEY].last_used_ip == "2001:db8::5"

            await eventually(fresh, timeout_s=15, what="the new use in key_activity")
            assert time.monotonic() - began < 10
            ingest = worker.app.ingest
            assert ingest is not None and ingest.stats.dead_letters == 0
            records = ingest.stats.blocks
        assert records > 0
        recorder.close(10)

        found = activity(settings, [KEY, REVOKED, "key_outcome0003"], now)
        # the newest use, whenever the answer's `now`; the windows end at `now`
        assert found[KEY].last_used_at == used_at.replace(
            microsecond=used_at.microsecond // 1000 * 1000
        )
        assert found[KEY].last_used_ip == "2001:db8::5"
        assert found[KEY].verifications_1h == 30 and found[KEY].verifications_5m == 0
        assert found[KEY].requests_1h == 0
        assert found[REVOKED].last_used_at is None  # a revoked key presented is no use
        assert found["key_outcome0003"].last_used_at is None

        # Delivered again: every landed insert re-applied as recovery does (its records
        # read back from Kafka by their recorded ranges, written with the same token).
        assert await asyncio.to_thread(redeliver, settings, topics.requests, kafka_bootstrap) > 0
        assert landed(settings) == expected
    finally:
        recorder.close(5)
