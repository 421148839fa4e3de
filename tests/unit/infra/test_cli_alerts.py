"""`keypulse rules add` rejects bad rules with one line naming the field (no Kafka needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infra.cli.main import app

COUNT = ["--kind", "request_count", "--window", "5m", "--threshold", "1"]
BASE = ["rules", "add", "--account", "acc_main", "--name", "Spike", "--key", "key_abc123"]


def run(*args: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--kind", "request_count", "--window", "90s", "--threshold", "5"], "window_s:"),
        (["--kind", "latency", "--window", "5m", "--threshold", "5"], "percentile:"),
        (["--kind", "error_rate", "--window", "5m", "--threshold", "500"], "threshold:"),
        (["--kind", "bogus", "--window", "5m", "--threshold", "1"], "kind:"),
        (
            [*COUNT, "--email", "x@"],
            "channels.0.email.to",
        ),
        (
            [*COUNT, "--webhook-url", "http://127.0.0.1:9/hook"],
            "channels.0.url: loopback",
        ),
        (
            [*COUNT, "--webhook-url", "http://169.254.169.254/latest"],
            "channels.0.url: metadata",
        ),
        (
            [*COUNT, "--slack-webhook", "https://evil.example.com/x"],
            "channels.0.webhook_url: host",
        ),
    ],
)
def test_invalid_rules_fail_with_one_line_naming_the_field(
    extra: list[str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run(*BASE, *extra, monkeypatch=monkeypatch)
    assert code == 1
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: invalid rule: ") and field in lines[0], output


def test_scope_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = run(
        "rules", "add", "--account", "acc_main", "--name", "x", "--kind", "request_count",
        "--window", "5m", "--threshold", "1", monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 1 and "scope: give --key KEY_ID or --all-keys" in output
