"""Migrations on chDB through clickhouse-connect: applied once, then a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.clickhouse import make_client, migration_context
from infra.settings import load_settings
from projections.migrate import discover, migrate

pytestmark = pytest.mark.clickhouse

EXPECTED_TABLES = {
    "requests_raw",
    "usage_rollup",
    "usage_minute_stage",
    "key_last_used",
    "key_ip_seen",
    "key_ip_day",
    "key_status_rollup",
    "ingest_batches",
    "keys",
    "accounts",
    "key_audit",
    "schema_migrations",
}


def test_migrations_apply_once_and_are_idempotent(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    client = make_client(settings)
    try:
        first = migrate(client, migration_context(settings))
        assert first == [m.id for m in discover()]
        assert migrate(client, migration_context(settings)) == []
        tables = {
            row[0]
            for row in client.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase()"
            ).result_rows
        }
        assert tables >= EXPECTED_TABLES
        ledger = client.query("SELECT count() FROM schema_migrations FINAL").result_rows
        assert ledger == [(len(first),)]
    finally:
        client.close()


def test_every_materialized_view_target_deduplicates(tmp_path: Path) -> None:
    """The exactly-once rule: every MV target keeps insert deduplication."""
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    client = make_client(settings)
    try:
        migrate(client, migration_context(settings))
        rows = client.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
        ddl = {str(name): str(query) for name, query in rows}
        targets = [
            q.split(" TO ", 1)[1].split()[0].split(".")[-1]
            for q in ddl.values()
            if "MATERIALIZED VIEW" in q
        ]
        assert len(targets) >= 4
        for target in [*targets, "requests_raw"]:
            if "ENGINE = `Null`" in ddl[target]:
                continue  # keeps nothing; the views it triggers write the real targets
            assert "non_replicated_deduplication_window" in ddl[target], target
    finally:
        client.close()


def test_migrations_use_the_configured_database_and_ttl(tmp_path: Path) -> None:
    """`KEYPULSE_CLICKHOUSE_DATABASE` and `_RAW_TTL_DAYS` reach the real DDL."""
    settings = load_settings(
        _env_file=None, data_dir=tmp_path, clickhouse={"database": "kp_custom", "raw_ttl_days": 41}
    )
    client = make_client(settings)
    try:
        migrate(client, migration_context(settings))
        homes = client.query(
            "SELECT DISTINCT database FROM system.tables WHERE name IN ('requests_raw', "
            "'usage_rollup', 'schema_migrations')"
        ).result_rows
        assert homes == [("kp_custom",)]
        ddl = client.command(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = 'kp_custom' AND name = 'requests_raw'"
        )
        assert "TTL toDateTime(occurred_at) + toIntervalDay(41)" in str(ddl), ddl
    finally:
        client.close()
