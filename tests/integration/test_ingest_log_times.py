"""The newest landed event time: a far-future `max_occurred_at` written before the cap
existed is capped by migration 0012, and the age read from it is never below 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from infra.clickhouse import migration_context
from infra.settings import load_settings
from projections.ingest_log import event_age_s, newest_event_time
from projections.migrate import LEDGER, discover, migrate
from projections.queries import UsageQueries
from tests.samples.streams import LOG_COLUMNS, log_row

TOPIC = "m.requests"
CAP = next(m.id for m in discover() if m.name == "ingest_log_capped_event_times")


def _landed(client: Client, seq: int, max_occurred_at: datetime) -> None:
    row = log_row(TOPIC, seq, {0: (seq, seq)}, 10, max_occurred_at, token=f"t{seq}")
    client.insert("ingest_batches", [row], column_names=LOG_COLUMNS)


@pytest.mark.clickhouse
def test_the_migration_caps_event_times_written_before_the_cap(migrated_client: Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    recent = before - timedelta(minutes=5)
    _landed(migrated_client, 1, recent)
    _landed(migrated_client, 2, datetime(2099, 12, 31, tzinfo=UTC))  # as the old worker wrote
    assert newest_event_time(migrated_client, TOPIC) == datetime(2099, 12, 31, tzinfo=UTC)

    migrated_client.command(
        f"ALTER TABLE {LEDGER} DELETE WHERE id = '{CAP}' SETTINGS mutations_sync = 1"
    )
    settings = load_settings(_env_file=None)
    assert migrate(migrated_client, migration_context(settings)) == [CAP]

    newest = newest_event_time(migrated_client, TOPIC)
    after = datetime.now(UTC)
    assert newest is not None and before <= newest <= after  # the row's own created_at
    fresh = UsageQueries(migrated_client).freshness(TOPIC, after + timedelta(seconds=30))
    assert fresh.newest_event_age_s is not None and 0 <= fresh.newest_event_age_s < 60
    rows = migrated_client.query(
        "SELECT seq, max_occurred_at FROM ingest_batches ORDER BY seq"
    ).result_rows
    assert rows[0] == (1, recent.replace(tzinfo=None))  # a time in the past stays as it was


def test_the_age_of_the_newest_event_is_never_negative() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert event_age_s(None, now) is None
    assert event_age_s(now - timedelta(seconds=90), now) == 90.0
    assert event_age_s(now + timedelta(seconds=2), now) == 0.0  # a record clock a bit ahead
