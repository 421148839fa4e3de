"""The one place that builds a clickhouse-connect client (chDB or HTTP) from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from infra.settings import Settings
from projections.migration_context import MigrationContext


class ClickHouseUnavailable(Exception):
    """ClickHouse could not be opened or reached; one clear line."""


def _chdb_path(dsn: str) -> Path:
    return Path(urlparse(dsn).path)


def make_client(settings: Settings, database: str | None = None) -> Client:
    """A client on the configured database, created if missing.

    chDB (`chdb:///dir`) runs in-process with memory capped by
    `KEYPULSE_CLICKHOUSE_CHDB_MAX_MEMORY_MB`; only one process may open a directory.
    """
    dsn = settings.clickhouse_dsn
    db = database or settings.clickhouse.database
    kwargs: dict[str, Any] = {}
    if dsn.startswith("chdb:"):
        path = _chdb_path(dsn)
        path.mkdir(parents=True, exist_ok=True)
        kwargs["chdb_options"] = {
            "max_server_memory_usage": settings.clickhouse.chdb_max_memory_mb * 1024 * 1024
        }
    try:
        bootstrap = clickhouse_connect.get_client(dsn=dsn, **kwargs)
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        return clickhouse_connect.get_client(dsn=dsn, database=db, **kwargs)
    except Exception as exc:  # chDB and HTTP raise different types; report one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "unable to open the chdb engine" in text.lower() or "lock" in text.lower():
            text = (
                f"the chDB directory {_chdb_path(dsn)} is open in another process "
                "(is a worker running? use its HTTP API)"
            )
        raise ClickHouseUnavailable(f"ClickHouse at {dsn}: {text[:300]}") from exc


def migration_context(settings: Settings) -> MigrationContext:
    return MigrationContext(raw_ttl_days=settings.clickhouse.raw_ttl_days)
