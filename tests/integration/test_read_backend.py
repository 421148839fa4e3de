"""The CLI's one read path: `keys`, `rules list|show`, `deliveries list` answer the same
through a running API (the real FastAPI app over chDB, served by uvicorn) as from chDB
directly, and both show the rows that were written."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from typer.testing import CliRunner

from alerting.ports import DeliveryRecord, RuleChange
from infra.cli.main import app
from infra.clickhouse import make_client, migration_context
from infra.http.client_pool import ClientPool
from infra.settings import Settings, load_settings
from infra.tools.receivers import free_port
from infra.wiring import build_api
from projections.alert_store import ClickHouseDeliveryLog, ClickHouseRuleStore
from projections.migrate import migrate
from projections.writers import ClickHouseKeyStore
from schemas.alerts import WebhookChannel
from schemas.key_format import hash_secret
from schemas.plans import Plan
from tests.eventually import eventually_sync
from tests.samples.alerting import SECRET, make_notification, make_rule
from tests.samples.keys import Chain
from tests.samples.streams import folded

pytestmark = pytest.mark.clickhouse

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TOKEN = "mk-secret-for-tests"
MANAGEMENT_KEY = {
    "key_id": "mk_cli",
    "account_id": "acc_main",
    "scope": "read_only",
    "secret_hash": hash_secret(TOKEN),
}


def _account(account: str, key_id: str, name: str) -> Chain:
    chain = Chain(account, Plan.PRO, at=AT)
    chain.create_key(key_id, name, at=AT)
    return chain


def _delivery(delivery_id: str, account: str, status: str) -> DeliveryRecord:
    channel = WebhookChannel(url="https://hooks.example.com/alerts", secret=SECRET)
    notification = make_notification().model_copy(
        update={"account_id": account, "channels": [channel]}
    )
    return DeliveryRecord(
        delivery_id=delivery_id,
        notification=notification,
        channel_index=0,
        channel_id=f"ch_{delivery_id}",
        attempt=3,
        at=AT,
        status=status,
        outcome="http_500",
        detail="endpoint answered 500",
    )


def _seed(settings: Settings) -> None:
    """Two accounts' keys, rules and deliveries (acc_main's must be the ones shown)."""
    client = make_client(settings)
    try:
        migrate(client, migration_context(settings))
        ClickHouseKeyStore(client).save(
            folded(
                _account("acc_main", "key_web001", "Production web"),
                _account("acc_other", "key_other1", "X"),
            )
        )
        main_rule = make_rule(rule_id="rule_main", name="Spike", threshold=250)
        other_rule = make_rule(rule_id="rule_other", account_id="acc_other")
        ClickHouseRuleStore(client).apply(
            [
                RuleChange("rule_main", "acc_main", main_rule, 1, AT),
                RuleChange("rule_other", "acc_other", other_rule, 2, AT),
            ]
        )
        ClickHouseDeliveryLog(client).append(
            [_delivery("dlv_main", "acc_main", "dead"), _delivery("dlv_other", "acc_other", "dead")]
        )
    finally:
        client.close()


@dataclass
class Cli:
    env: dict[str, str]

    def json(self, *args: str) -> Any:
        result = CliRunner().invoke(app, [*args], env=self.env)
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)


def _env(data_dir: Path, api_port: int, token: str = "") -> dict[str, str]:
    return {
        "KEYPULSE_DATA_DIR": str(data_dir),
        "KEYPULSE_API_PORT": str(api_port),
        "KEYPULSE_API_TOKEN": token,
    }


@pytest.fixture
def seeded(tmp_path: Path) -> Settings:
    api = {"port": free_port(), "management_keys": [MANAGEMENT_KEY]}
    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", api=api)
    _seed(settings)
    return settings


@contextmanager
def serving_api(settings: Settings) -> Iterator[None]:
    """The real HTTP API over `settings`' chDB on `settings.api.port`, until exit."""
    pool = ClientPool(lambda: make_client(settings), size=2)
    api, _ = build_api(settings, pool)
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=settings.api.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        eventually_sync(lambda: server.started, 30, "the API server to start")
        yield
    finally:
        server.should_exit = True
        thread.join(30)
        for client in pool.clients:
            client.close()


def _reads(cli: Cli, *account: str) -> dict[str, Any]:
    return {
        "keys": cli.json("keys", "--json", *account),
        "rules": cli.json("rules", "list", "--json", *account),
        "rule": cli.json("rules", "show", "rule_main"),
        "deliveries": cli.json("deliveries", "list", "--json", *account),
    }


def _check_acc_main(reads: dict[str, Any]) -> None:
    """What was written for acc_main, and nothing of acc_other."""
    assert [(k["key_id"], k["name"], k["requests_30d"]) for k in reads["keys"]] == [
        ("key_web001", "Production web", 0)
    ]
    assert [(r["rule_id"], r["name"], r["threshold"]) for r in reads["rules"]] == [
        ("rule_main", "Spike", 250)
    ]
    assert reads["rule"]["rule_id"] == "rule_main" and reads["rule"]["version"] == 1
    assert [(d["delivery_id"], d["status"], d["attempt"]) for d in reads["deliveries"]] == [
        ("dlv_main", "dead", 3)
    ]


def test_direct_reads_show_what_was_written(seeded: Settings) -> None:
    cli = Cli(_env(seeded.data_dir, seeded.api.port))
    _check_acc_main(_reads(cli, "--account", "acc_main"))
    every_account = cli.json("rules", "list", "--json")
    assert sorted(r["rule_id"] for r in every_account) == ["rule_main", "rule_other"]


def test_reads_through_a_running_api_answer_as_direct_reads(
    seeded: Settings, tmp_path: Path
) -> None:
    direct = _reads(Cli(_env(seeded.data_dir, seeded.api.port)), "--account", "acc_main")
    with serving_api(seeded):
        # An empty data directory: only the API can know the rows.
        through_api = _reads(Cli(_env(tmp_path / "empty", seeded.api.port, TOKEN)))
    _check_acc_main(through_api)
    assert through_api == direct


def test_a_running_api_without_a_token_is_one_clear_error(seeded: Settings) -> None:
    with serving_api(seeded):
        result = CliRunner().invoke(
            app, ["rules", "list"], env=_env(seeded.data_dir, seeded.api.port)
        )
    assert result.exit_code == 1
    assert result.output.startswith("error: a worker is running") and "KEYPULSE_API_TOKEN" in (
        result.output
    )
