"""Migration SQL rendering and the runner's bookkeeping, without ClickHouse.

The statements are rendered for a context whose values are unlike the defaults, so a
value that does not come from the context (a hard-coded TTL, a default dedup window)
shows up. The runner runs against an in-memory fake of the two queries it asks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from projections import migrations as migrations_pkg
from projections.migrate import LEDGER, Migration, discover, migrate
from projections.migration_context import MigrationContext

CTX = MigrationContext(raw_ttl_days=41, minute_ttl_days=17, dedup_window=1234)
OLD_TIERS = frozenset({"usage_minute", "usage_hour", "usage_day"})
LONG_TTL = 41 + 366  # hour and day rows outlive the raw rows by a year


def _by_id() -> dict[str, Migration]:
    return {m.id: m for m in discover()}


def _sql(migration_id: str, ctx: MigrationContext = CTX) -> str:
    return "\n".join(_by_id()[migration_id].statements(ctx))


def _squash(sql: str) -> str:
    return re.sub(r"\s+", " ", sql)


def test_discover_finds_every_numbered_module_in_order() -> None:
    files = sorted(
        p.stem
        for p in Path(migrations_pkg.__path__[0]).glob("*.py")
        if re.fullmatch(r"\d{4}_[a-z0-9_]+", p.stem)
    )
    found = discover()
    assert [m.id for m in found] == files
    assert [m.number for m in found] == sorted({int(f[:4]) for f in files})


@pytest.mark.parametrize(
    "ctx",
    [MigrationContext(), CTX, MigrationContext(existing_tables=OLD_TIERS | {"requests_raw"})],
    ids=["defaults", "custom", "upgrade"],
)
def test_every_statement_renders_completely(ctx: MigrationContext) -> None:
    for migration in discover():
        statements = migration.statements(ctx)
        assert statements, migration.id
        for sql in statements:
            assert sql.strip(), migration.id
            assert not re.search(r"[{}]", sql), f"{migration.id}: leftover placeholder in {sql}"
            assert "None" not in sql and "ctx." not in sql, migration.id


def test_no_statement_names_a_database() -> None:
    """Migrations run on the client's database (`KEYPULSE_CLICKHOUSE_DATABASE`)."""
    for migration in discover():
        for sql in migration.statements(CTX):
            text = _squash(sql).upper()
            assert "DATABASE" not in text and not text.strip().startswith("USE "), migration.id
            assert "KEYPULSE." not in text, migration.id


def test_raw_ttl_comes_from_the_context() -> None:
    assert "TTL toDateTime(occurred_at) + INTERVAL 41 DAY" in _squash(_sql("0001_requests_raw"))


def test_rollup_ttls_come_from_the_context() -> None:
    sql = _squash(_sql("0011_usage_rollup"))
    assert (
        f"TTL bucket + INTERVAL 17 DAY DELETE WHERE tier = 'minute', "
        f"bucket + INTERVAL {LONG_TTL} DAY"
    ) in sql
    tiers = _squash(_sql("0010_usage_tiers"))
    assert "minute + INTERVAL 17 DAY" in tiers
    assert f"hour + INTERVAL {LONG_TTL} DAY" in tiers
    assert f"day + INTERVAL {LONG_TTL} DAY" in tiers


def test_dedup_window_comes_from_the_context() -> None:
    windows = []
    for migration in discover():
        sql = "\n".join(migration.statements(CTX))
        windows += re.findall(r"non_replicated_deduplication_window\s*=\s*(\d+)", sql)
    assert len(windows) >= 8
    assert set(windows) == {"1234"}


def test_rollup_copy_depends_on_the_tables_present() -> None:
    fresh = _sql("0011_usage_rollup", CTX)
    assert "INSERT INTO usage_rollup_0011" not in fresh  # nothing to copy on a fresh database
    partial = _sql("0011_usage_rollup", MigrationContext(existing_tables=frozenset({"usage_hour"})))
    copies = re.findall(r"INSERT INTO usage_rollup_0011 .*? FROM (\w+)", partial)
    assert copies == ["usage_hour"]
    assert "RENAME TABLE usage_rollup_0011 TO usage_rollup" in partial
    done = _sql("0011_usage_rollup", MigrationContext(existing_tables=frozenset({"usage_rollup"})))
    assert "usage_rollup_0011" not in done  # a completed copy is never redone


class FakeClickHouse:
    """The ledger and table list the runner asks for, and every command it sends."""

    def __init__(self, applied: set[str] | None = None, tables: set[str] | None = None) -> None:
        self.applied = set(applied or ())
        self.tables = set(tables or ())
        self.commands: list[str] = []

    def command(self, cmd: str) -> object:
        self.commands.append(cmd)
        if cmd.startswith(f"SELECT arrayStringConcat(groupUniqArray(id), ',') FROM {LEDGER}"):
            return ",".join(sorted(self.applied))
        if "FROM system.tables" in cmd:
            return ",".join(sorted(self.tables))
        insert = re.fullmatch(rf"INSERT INTO {LEDGER} \(id\) VALUES \('(\w+)'\)", cmd)
        if insert:
            self.applied.add(insert.group(1))
        return None


def test_migrate_applies_each_pending_migration_once_in_order() -> None:
    all_ids = [m.id for m in discover()]
    fake = FakeClickHouse(applied={all_ids[0]}, tables={"requests_raw"})
    announced: list[str] = []
    applied = migrate(fake, CTX, on_apply=lambda m: announced.append(m.id))
    assert applied == announced == all_ids[1:]
    assert fake.applied == set(all_ids)
    ledger_inserts = [c for c in fake.commands if c.startswith(f"INSERT INTO {LEDGER}")]
    assert ledger_inserts == [f"INSERT INTO {LEDGER} (id) VALUES ('{i}')" for i in all_ids[1:]]
    assert "CREATE TABLE IF NOT EXISTS requests_raw" not in "\n".join(fake.commands)
    # Each migration's statements run before its ledger row, in order.
    second = _by_id()[all_ids[1]].statements(CTX)
    start = fake.commands.index(second[0])
    assert fake.commands[start : start + len(second) + 1] == [
        *second,
        f"INSERT INTO {LEDGER} (id) VALUES ('{all_ids[1]}')",
    ]
    again = FakeClickHouse(applied=fake.applied)
    assert migrate(again, CTX) == []
    assert not any("CREATE TABLE IF NOT EXISTS requests_raw" in c for c in again.commands)


def test_migrate_tells_each_migration_which_tables_exist() -> None:
    all_ids = [m.id for m in discover()]
    before_0011 = {i for i in all_ids if i < "0011"}
    fake = FakeClickHouse(applied=before_0011, tables=set(OLD_TIERS))
    assert migrate(fake, CTX) == [i for i in all_ids if i >= "0011"]
    sources = re.findall(r"INSERT INTO usage_rollup_0011 .*? FROM (\w+)", "\n".join(fake.commands))
    assert sorted(sources) == sorted(OLD_TIERS)
