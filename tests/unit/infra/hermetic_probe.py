"""Run only by `test_conftest.py`, in a pytest subprocess whose environment and `.env`
point `KEYPULSE_CLICKHOUSE_DSN` at a recording HTTP server (the name keeps pytest from
collecting it on its own). Each test fails if the session's isolation let that through."""

from __future__ import annotations

import os
import subprocess
import sys

from clickhouse_connect.driver.client import Client

from infra.settings import ENV_PREFIX, load_settings
from tests.conftest import TEST_BOOTSTRAP_VARIABLE


def test_no_developer_variable_is_visible() -> None:
    leaked = [n for n in os.environ if n.startswith(ENV_PREFIX) and n != TEST_BOOTSTRAP_VARIABLE]
    assert leaked == []


def test_migrated_client_is_a_fresh_local_chdb(migrated_client: Client) -> None:
    assert migrated_client.command("SELECT currentDatabase()") == "keypulse"
    applied = migrated_client.command("SELECT count() FROM schema_migrations")
    assert isinstance(applied, int) and applied > 0


def test_settings_read_as_helpers_do_see_neither_variables_nor_dotenv() -> None:
    settings = load_settings()  # the default `.env` lookup, as test helpers call it
    assert settings.clickhouse_dsn.startswith("chdb://")
    assert settings.clickhouse.database == "keypulse"


def test_subprocesses_see_neither_variables_nor_dotenv() -> None:
    code = "from infra.settings import load_settings; print(load_settings().clickhouse_dsn)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("chdb://"), result.stdout
