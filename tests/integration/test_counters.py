"""Ordering keys come from `projections.counters.GrowingCounter`, not the wall clock: rows
written before a restart while the clock was an hour ahead (their `seq`/`version` is a
nanosecond timestamp of that clock, as the old clock-based keys were) do not outrank
the rows written after it. Each test would fail with clock-derived keys."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import DeliveryRecord, DisabledEndpoint
from projections.alert_store import ClickHouseAlertStateStore, ClickHouseDeliveryLog
from projections.counters import GrowingCounter
from projections.writers import ClickHouseIngestStore
from schemas.alerts import AlertInstance, AlertState, WebhookChannel
from streams.worker.ports import InsertBlock, OffsetRange
from tests.samples.alerting import SECRET, make_notification
from tests.samples.streams import LOG_COLUMNS, log_row

pytestmark = pytest.mark.clickhouse

AHEAD_NS = time.time_ns() + 3600 * 10**9
"""A nanosecond timestamp of a clock one hour ahead of this one."""
NOW = datetime.now(UTC).replace(microsecond=0)


def test_the_counter_starts_above_every_stored_key(migrated_client: Client) -> None:
    client = migrated_client
    counter = GrowingCounter(client, ("deliveries", "seq"), ("disabled_endpoints", "version"))
    assert [counter.next(), counter.next()] == [1, 2]  # empty tables: from 1
    client.insert(
        "disabled_endpoints",
        [["ch", "webhook", True, "r", NOW, 41]],
        column_names=("channel_id", "channel_type", "disabled", "reason", "at", "version"),
    )
    later = GrowingCounter(client, ("deliveries", "seq"), ("disabled_endpoints", "version"))
    assert [later.next(), later.next()] == [42, 43]


def test_ingest_log_newest_row_wins_after_a_clock_step_back(migrated_client: Client) -> None:
    topic = "o.requests"
    row = log_row(topic, AHEAD_NS, {0: (0, 9)}, 0, 0, token=f"{topic}|0:0-9")
    migrated_client.insert("ingest_batches", [row], column_names=LOG_COLUMNS)
    store = ClickHouseIngestStore(migrated_client)  # the worker restarts, clock set back
    newer = InsertBlock(topic, [OffsetRange(0, 10, 14)], {}, 0, 0)
    store.write(newer)
    assert _newest_of(store, topic) == (OffsetRange(0, 10, 14),)
    store.write(InsertBlock(topic, [OffsetRange(1, 0, 3)], {}, 0, 0))
    assert _newest_of(store, topic) == (OffsetRange(1, 0, 3),)


def _newest_of(store: ClickHouseIngestStore, topic: str) -> tuple[OffsetRange, ...]:
    """The ranges of the store's own newest write-ahead row, as recovery reads them."""
    mine = [w for w in store.recovery_log(topic) if w.writer == store.writer and w.ranges]
    return max(mine, key=lambda w: w.seq).ranges


def _instance(state: AlertState) -> AlertInstance:
    return AlertInstance(
        fingerprint="fp_order",
        rule_id="rule_1",
        account_id="acc_main",
        key_id="key_abc123",
        state=state,
        since=NOW,
    )


def test_alert_instance_newest_state_wins_after_a_clock_step_back(
    migrated_client: Client,
) -> None:
    firing = _instance(AlertState.FIRING)
    migrated_client.insert(
        "alert_instances",
        [
            [
                "fp_order",
                "rule_1",
                "acc_main",
                "key_abc123",
                "firing",
                firing.model_dump_json(),
                NOW,
                AHEAD_NS,
            ]
        ],
        column_names=(
            "fingerprint",
            "rule_id",
            "account_id",
            "key_id",
            "state",
            "instance",
            "updated_at",
            "version",
        ),
    )
    store = ClickHouseAlertStateStore(migrated_client)
    store.save([], [_instance(AlertState.NORMAL)], token="t1")
    assert store.load_instances() == [_instance(AlertState.NORMAL)]
    store.save([], [_instance(AlertState.PENDING)], token="t2")
    assert store.load_instances() == [_instance(AlertState.PENDING)]


def test_delivery_newest_row_wins_after_a_clock_step_back(migrated_client: Client) -> None:
    client = migrated_client
    channel = WebhookChannel(url="https://hooks.example.com/x", secret=SECRET)
    notification = make_notification().model_copy(update={"channels": [channel]})
    record = DeliveryRecord(
        delivery_id="d1",
        notification=notification,
        channel_index=0,
        channel_id="webhook:1",
        attempt=1,
        at=NOW,
        status="retrying",
        next_attempt_at=NOW + timedelta(minutes=1),
    )
    ClickHouseDeliveryLog(client).append([record])
    # The same row, as written by a process whose clock was an hour ahead.
    client.command(
        f"INSERT INTO deliveries SELECT * REPLACE ({AHEAD_NS} AS seq) FROM deliveries "
        "WHERE delivery_id = 'd1'"
    )
    client.insert(
        "disabled_endpoints",
        [["webhook:1", "webhook", True, "410 gone", NOW, AHEAD_NS]],
        column_names=("channel_id", "channel_type", "disabled", "reason", "at", "version"),
    )

    log = ClickHouseDeliveryLog(client)  # restarted, clock set back
    log.append([replace(record, attempt=2, status="delivered", next_attempt_at=None)])
    log.set_endpoint(DisabledEndpoint("webhook:1", "webhook", "re-enabled", NOW, disabled=False))
    assert log.latest(["d1"]).status == {"d1": "delivered"}
    got = log.get("d1")
    assert got is not None and (got.status, got.attempt) == ("delivered", 2)
    assert [r.status for r in log.attempts("d1")] == ["retrying", "retrying", "delivered"]
    assert log.disabled_endpoints() == set()
