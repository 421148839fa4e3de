"""The migration runner: applies numbered migrations once each, recording them in a table."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from projections import migrations as migrations_pkg
from projections.migration_context import MigrationContext

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)$")
LEDGER = "schema_migrations"


class SqlClient(Protocol):
    """The part of a clickhouse-connect client the runner needs."""

    def command(self, cmd: str) -> object: ...


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    statements: Callable[[MigrationContext], list[str]]

    @property
    def id(self) -> str:
        return f"{self.number:04d}_{self.name}"


def discover() -> list[Migration]:
    """Every migration module in `projections.migrations`, in number order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(migrations_pkg.__path__):
        match = _NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{migrations_pkg.__name__}.{info.name}")
        found.append(Migration(int(match.group(1)), match.group(2), module.statements))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"duplicate migration numbers: {numbers}")
    return found


def _applied(client: SqlClient) -> set[str]:
    client.command(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (id String, applied_at DateTime64(3, 'UTC') "
        "DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY id"
    )
    result = client.command(f"SELECT arrayStringConcat(groupUniqArray(id), ',') FROM {LEDGER}")
    text = result if isinstance(result, str) else ""
    return {x for x in text.split(",") if x}


def _tables(client: SqlClient) -> frozenset[str]:
    result = client.command(
        "SELECT arrayStringConcat(groupArray(name), ',') FROM system.tables "
        "WHERE database = currentDatabase()"
    )
    text = result if isinstance(result, str) else ""
    return frozenset(x for x in text.split(",") if x)


def migrate(
    client: SqlClient,
    ctx: MigrationContext,
    on_apply: Callable[[Migration], None] | None = None,
) -> list[str]:
    """Apply every pending migration in order; return the ids applied (empty: up to date)."""
    done = _applied(client)
    applied: list[str] = []
    for migration in discover():
        if migration.id in done:
            continue
        if on_apply:
            on_apply(migration)
        now_ctx = replace(ctx, existing_tables=_tables(client))
        for statement in migration.statements(now_ctx):
            client.command(statement)
        client.command(f"INSERT INTO {LEDGER} (id) VALUES ('{migration.id}')")
        applied.append(migration.id)
    return applied
