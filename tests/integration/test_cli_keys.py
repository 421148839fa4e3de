"""`keypulse accounts …` and `keypulse keys create|rename|revoke|delete` against the real
broker, checked against the key-events topic read independently (a `KeyFollower` in this
process, the one fold every reader uses).

The first test, the missing-broker and bad-argument test and the listing test run the
real console script in a subprocess; the others invoke the same typer app in this
process (typer's CliRunner: its own stdout, stderr and exit code, the test's variables
in the environment during the call), which spares each call an interpreter start and
the CLI's imports (~1.5 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from infra.cli.main import app
from schemas.alerts import MISUSE_KINDS, AlertRule, AlertRuleCreated, AlertRuleUpdated
from schemas.codec import decode_rule_event
from schemas.key_format import ParsedSecret, check_secret, hash_secret
from schemas.key_ledger import AccountLedger, KeyStatus
from schemas.topics import TopicNames
from streams.client.key_follower import FollowerConfig, KeyFollower
from tests.integration.producer_support import read_topic

pytestmark = pytest.mark.kafka

KEYPULSE = Path(sys.executable).parent / "keypulse"
SECRET = re.compile(r"pk_(?:live|test)_[0-9A-Za-z]{36}")
ONCE = "This is the only time the secret is shown"


class Cli:
    """`keypulse` with the test broker and topic prefix only (and 200 columns): the
    console script in a subprocess (`script=True`) or the typer app in this process."""

    def __init__(self, bootstrap: str, prefix: str, script: bool = False) -> None:
        self.env = {
            "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KEYPULSE_KAFKA_TOPIC_PREFIX": prefix,
            "COLUMNS": "200",
        }
        self.script = script

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        if self.script:
            return subprocess.run(
                [str(KEYPULSE), *args],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        # A bug's exception propagates (the script would print its traceback, exit 1).
        result = CliRunner().invoke(
            app, list(args), env=self.env, catch_exceptions=False, prog_name="keypulse"
        )
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def json(self, *args: str) -> Any:
        return orjson.loads(self.ok(*args, "--json").stdout)


@pytest.fixture
def cli(kafka_bootstrap: str, topic_prefix: str) -> Cli:
    return Cli(kafka_bootstrap, topic_prefix)


@pytest.fixture
def follower(kafka_bootstrap: str, topic_prefix: str, cli: Cli) -> Iterator[KeyFollower]:
    cli.ok("topics", "ensure")
    topic = TopicNames.with_prefix(topic_prefix).key_events
    reader = KeyFollower(FollowerConfig(kafka_bootstrap, topic, client_id="test-cli-reader"))
    reader.start()
    try:
        reader.wait_ready(30)
        yield reader
    finally:
        reader.close()


def _ledger(follower: KeyFollower, account: str) -> AccountLedger:
    follower.sync(30)
    ledger = follower.snapshot(account)
    assert ledger is not None, f"{account} is not on the topic"
    return ledger


def test_accounts_create_prints_its_admin_key_once(
    kafka_bootstrap: str, topic_prefix: str, follower: KeyFollower
) -> None:
    cli = Cli(kafka_bootstrap, topic_prefix, script=True)
    result = cli.ok("accounts", "create", "acc_clipro", "--plan", "pro")
    secrets = SECRET.findall(result.stdout)
    assert len(secrets) == 1, result.stdout
    assert SECRET.search(result.stderr) is None
    assert ONCE in result.stderr
    parsed = check_secret(secrets[0])
    assert isinstance(parsed, ParsedSecret) and parsed.key_type == "live"

    follower.sync(30)  # the CLI saw its events applied; this reader catches up to them
    key = follower.key_by_hash(hash_secret(secrets[0]))
    assert key is not None, "the printed secret's hash is not on the topic"
    assert (key.account_id, key.access.value, key.status, key.created_by) == (
        "acc_clipro",
        "admin",
        KeyStatus.ACTIVE,
        "cli",
    )
    assert key.key_id in result.stdout and key.hint in result.stdout

    shown = cli.json("accounts", "show", "acc_clipro")
    ledger = _ledger(follower, "acc_clipro")
    assert shown["plan"] == ledger.plan.value == "pro"
    assert shown["limits"] == {"live": 10, "test": 10, "admin": 5}
    assert (
        shown["active"]
        == {"live": 0, "test": 0, "admin": 1}
        == {c: ledger.count(c) for c in ("live", "test", "admin")}
    )
    assert shown["keys"] == {"active": 1, "revoked": 0, "deleted": 0}
    assert shown["seq"] == ledger.seq == 2

    again = cli.run("accounts", "create", "acc_clipro", "--plan", "pro")
    assert again.returncode == 1
    assert again.stderr.startswith("error: account_exists: ")
    assert SECRET.search(again.stdout + again.stderr) is None
    assert _ledger(follower, "acc_clipro").seq == 2, "a refused create appended nothing"


def test_accounts_create_json_carries_the_secret(cli: Cli, follower: KeyFollower) -> None:
    created = cli.json("accounts", "create", "acc_clijson", "--plan", "business")
    secret = created["secret"]
    assert isinstance(check_secret(secret), ParsedSecret)
    key = _ledger(follower, "acc_clijson").keys[created["key"]["key_id"]]
    assert key.secret_hash == hash_secret(secret)
    assert created["key"]["hint"] == f"{key.hint}…" == f"{secret[:12]}…"
    assert created["account"]["plan"] == "business"
    assert created["account"]["active"]["admin"] == 1


def test_key_lifecycle(cli: Cli, follower: KeyFollower) -> None:
    cli.ok("accounts", "create", "acc_clilife", "--plan", "free")
    made = cli.json(
        "keys", "create", "acc_clilife", "--name", "Reporting job", "--type", "test",
        "--access", "read_only",
    )  # fmt: skip
    key_id, secret = made["key"]["key_id"], made["secret"]
    parsed = check_secret(secret)
    assert isinstance(parsed, ParsedSecret) and parsed.key_type == "test"
    assert made["warnings"] == []
    key = _ledger(follower, "acc_clilife").keys[key_id]
    assert key.secret_hash == hash_secret(secret)
    assert (key.name, key.key_type.value, key.access.value) == (
        "Reporting job",
        "test",
        "read_only",
    )

    renamed = cli.json("keys", "rename", "acc_clilife", key_id, "Nightly reporting job")
    assert renamed["changed"] and "secret" not in renamed
    assert _ledger(follower, "acc_clilife").keys[key_id].name == "Nightly reporting job"

    revoked = cli.json("keys", "revoke", "acc_clilife", key_id, "--reason", "compromised")
    key = _ledger(follower, "acc_clilife").keys[key_id]
    assert key.status is KeyStatus.REVOKED and key.revoke_reason is not None
    assert key.revoke_reason.value == revoked["key"]["revoke_reason"] == "compromised"
    assert not cli.json("keys", "revoke", "acc_clilife", key_id)["changed"]

    deleted = cli.ok("keys", "delete", "acc_clilife", key_id)
    assert f"{key_id} deleted" in deleted.stdout
    assert _ledger(follower, "acc_clilife").keys[key_id].status is KeyStatus.DELETED
    assert SECRET.search(deleted.stdout + deleted.stderr) is None

    gone = cli.run("keys", "rename", "acc_clilife", key_id, "Anything")
    assert gone.returncode == 1 and gone.stderr.startswith("error: key_not_found: ")


def test_refusals_exit_non_zero_with_their_code(cli: Cli, follower: KeyFollower) -> None:
    cli.ok("accounts", "create", "acc_clifree")
    live = [
        cli.json("keys", "create", "acc_clifree", "--name", f"Web app {i}")["key"]["key_id"]
        for i in range(2)
    ]
    over = cli.run("keys", "create", "acc_clifree", "--name", "Third web app", "--json")
    assert over.returncode == 1
    assert over.stderr.startswith("error: plan_limit_reached: the free plan allows 2 active live")
    problem = orjson.loads(over.stdout)["error"]
    assert problem["code"] == "plan_limit_reached"
    assert (problem["plan"], problem["key_type"], problem["limit"], problem["active"]) == (
        "free",
        "live",
        2,
        2,
    )
    assert SECRET.search(over.stdout + over.stderr) is None

    active = cli.run("keys", "delete", "acc_clifree", live[0])
    assert active.returncode == 1 and active.stderr.startswith("error: key_not_revoked: ")
    assert "revoke it first" in active.stderr

    unknown = cli.run("keys", "revoke", "acc_clifree", "key_doesnotexist")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: key_not_found: ")
    missing = cli.run("accounts", "show", "acc_clinothere", "--json")
    assert missing.returncode == 1
    assert orjson.loads(missing.stdout)["error"]["code"] == "account_not_found"
    ledger = _ledger(follower, "acc_clifree")
    assert (ledger.count("live"), ledger.seq) == (2, 4), "the refusals appended nothing"


def test_a_downgrade_keeps_the_keys_and_refuses_new_ones(cli: Cli, follower: KeyFollower) -> None:
    cli.ok("accounts", "create", "acc_clidown", "--plan", "pro")
    for i in range(3):
        cli.ok("keys", "create", "acc_clidown", "--name", f"Service {i}", "--json")
    down = cli.ok("accounts", "plan", "acc_clidown", "free")
    assert "now on the free plan" in down.stdout
    assert "3 active live keys and the free plan allows 2" in down.stderr
    ledger = _ledger(follower, "acc_clidown")
    assert (ledger.plan.value, ledger.count("live")) == ("free", 3)
    refused = cli.run("keys", "create", "acc_clidown", "--name", "Service 4")
    assert refused.returncode == 1 and "plan_limit_reached" in refused.stderr
    same = cli.json("accounts", "plan", "acc_clidown", "free")
    assert not same["changed"] and same["account"]["plan"] == "free"


def test_generic_names_are_accepted_with_a_warning(cli: Cli) -> None:
    cli.ok("accounts", "create", "acc_cliwarn")
    made = cli.ok("keys", "create", "acc_cliwarn", "--name", "Key 1", "--type", "test")
    assert "warning:" in made.stderr and "descriptive name" in made.stderr
    invalid = cli.run("keys", "create", "acc_cliwarn", "--name", " padded ")
    assert invalid.returncode == 1 and invalid.stderr.startswith("error: invalid_name: ")


def test_idempotent_create_shows_no_secret_the_second_time(cli: Cli, follower: KeyFollower) -> None:
    cli.ok("accounts", "create", "acc_cliidem")
    args = ("keys", "create", "acc_cliidem", "--name", "Billing sync", "--idempotency-key", "k-1")
    first = cli.json(*args)
    second = cli.json(*args)
    assert isinstance(check_secret(first["secret"]), ParsedSecret)
    assert second["secret"] is None and "cannot be shown again" in second["note"]
    assert second["key"]["key_id"] == first["key"]["key_id"]
    assert _ledger(follower, "acc_cliidem").count("live") == 1


def test_bad_arguments_and_no_broker_are_one_line(topic_prefix: str) -> None:
    began = time.monotonic()
    unreachable = Cli("127.0.0.1:1", topic_prefix, script=True).run(
        "keys", "revoke", "acc_x01", "key_abcdef"
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.strip() == "error: no Kafka broker reachable at 127.0.0.1:1"
    assert time.monotonic() - began < 60
    bad = Cli("127.0.0.1:1", topic_prefix, script=True).run("accounts", "create", "nope")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ACCOUNT: expected acc_")


def test_the_listing_still_answers_beside_the_write_commands(tmp_path: Path) -> None:
    """`keypulse keys` without a subcommand is the keys page (ClickHouse when no worker)."""
    env = {**os.environ, "KEYPULSE_DATA_DIR": str(tmp_path), "KEYPULSE_API_PORT": "1"}
    result = subprocess.run(
        [str(KEYPULSE), "keys", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --account is required when reading ClickHouse directly"
    helped = subprocess.run(
        [str(KEYPULSE), "keys", "--help"], env=env, capture_output=True, text=True, check=False
    )
    for command in ("create", "rename", "revoke", "delete", "list"):
        assert command in helped.stdout


def _rules_on_topic(bootstrap: str, prefix: str) -> dict[str, AlertRule]:
    """Every rule created on the alert-rules topic so far, by rule id (the CLI returns
    once the broker confirmed each rule event: the topic's end offsets hold them)."""
    topic = TopicNames.with_prefix(prefix).alert_rules
    events = [decode_rule_event(r.value) for r in read_topic(bootstrap, topic)]
    return {
        e.rule.rule_id: e.rule for e in events if isinstance(e, AlertRuleCreated | AlertRuleUpdated)
    }


def test_a_new_account_gets_the_misuse_rules_opt_out(
    cli: Cli, follower: KeyFollower, kafka_bootstrap: str, topic_prefix: str
) -> None:
    created = cli.json("accounts", "create", "acc_climisuse", "--admin-email", "Ops@Example.com")
    cli.ok("accounts", "create", "acc_clinomisuse", "--no-misuse-rules")
    rules = _rules_on_topic(kafka_bootstrap, topic_prefix)
    assert sorted(created["misuse_rules"]) == sorted(rules)
    assert {r.kind for r in rules.values()} == MISUSE_KINDS
    for rule in rules.values():
        assert rule.account_id == "acc_climisuse" and rule.enabled
        assert rule.scope.type == "account"
        assert [c.model_dump() for c in rule.channels] == [
            {"type": "email", "to": ["Ops@example.com"]}
        ]
    cli.ok("rules", "defaults", "acc_clinomisuse")  # switched on later, without a channel
    later = {
        i: r for i, r in _rules_on_topic(kafka_bootstrap, topic_prefix).items() if i not in rules
    }
    assert {r.kind for r in later.values()} == MISUSE_KINDS
    assert all(r.account_id == "acc_clinomisuse" and not r.channels for r in later.values())
