"""The evaluator's ClickHouse read side over real rollups (chDB, no broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import StatsQuery, WindowStats
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.writers import ClickHouseKeyStore
from schemas.alerts import RuleKind
from streams.worker.ports import KeyState, KeyStatus

pytestmark = pytest.mark.clickhouse

NOW = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


def _key(account: str, key: str, status: KeyStatus) -> KeyState:
    t = NOW - timedelta(days=3)
    return KeyState(
        account_id=account,
        key_id=key,
        name=key,
        key_type="live",
        access="full",
        status=status,
        plan="pro",
        created_at=t,
        revoked_at=t if status is KeyStatus.REVOKED else None,
        deleted_at=t if status is KeyStatus.DELETED else None,
        updated_at=t,
        version=1,
    )


def _requests(client: Client, account: str, key: str, at: list[datetime], status: int) -> None:
    cols = ["event_id", "occurred_at", "key_id", "account_id", "method", "route", "status"]
    cols += ["latency_ms", "client_ip", "bytes_out", "is_render", "watermarked"]
    cols += ["src_partition", "src_offset"]
    fixed = ["GET", "/v1/x", status, 12.5, "10.0.0.1", 10, False, False, 0]
    rows = [[uuid.uuid4(), t, key, account, *fixed, i] for i, t in enumerate(at)]
    client.insert("requests_raw", rows, column_names=cols, settings={"async_insert": 0})


def test_request_count_over_an_account_includes_its_silent_active_keys(
    migrated_client: Client,
) -> None:
    ClickHouseKeyStore(migrated_client).save(
        [
            _key("acc_a", "key_busy0001", KeyStatus.ACTIVE),
            _key("acc_a", "key_quiet001", KeyStatus.ACTIVE),
            _key("acc_a", "key_revoked1", KeyStatus.REVOKED),
            _key("acc_a", "key_deleted1", KeyStatus.DELETED),
            _key("acc_b", "key_other001", KeyStatus.ACTIVE),
        ],
        [],
    )
    minutes_ago = [NOW - timedelta(minutes=m) for m in (1, 2, 3)]
    _requests(migrated_client, "acc_a", "key_busy0001", minutes_ago, 200)
    _requests(migrated_client, "acc_a", "key_quiet001", [NOW - timedelta(hours=3)], 500)
    queries = ClickHouseEvaluationQueries(migrated_client, "keypulse.requests")

    counts = queries.window_stats(StatsQuery(RuleKind.REQUEST_COUNT, 3600, ("acc_a",)), NOW)
    assert counts == {
        ("acc_a", "key_busy0001"): WindowStats(3),
        ("acc_a", "key_quiet001"): WindowStats(0),
    }

    # Other kinds have nothing to say about a key without traffic: no zero rows.
    errors = queries.window_stats(StatsQuery(RuleKind.ERROR_RATE, 3600, ("acc_a",)), NOW)
    assert errors == {("acc_a", "key_busy0001"): WindowStats(3, 0)}

    # A key-scoped rule reads only its key, silent or not.
    one = queries.window_stats(
        StatsQuery(RuleKind.REQUEST_COUNT, 3600, (), (("acc_b", "key_other001"),)), NOW
    )
    assert one == {}

    # The window is exact to the minute and spans hours and days when it is long.
    day = queries.window_stats(StatsQuery(RuleKind.ERROR_RATE, 86400, ("acc_a",)), NOW)
    assert day == {
        ("acc_a", "key_busy0001"): WindowStats(3, 0),
        ("acc_a", "key_quiet001"): WindowStats(1, 1),
    }
