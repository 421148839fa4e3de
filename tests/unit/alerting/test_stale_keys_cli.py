"""`keypulse rules add --kind stale_key_presented`: bad fields fail with one line naming the
field and what to give (no Kafka needed); the same message the HTTP API's 422 carries."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infra import alert_admin
from infra.cli.main import app

BASE = ["rules", "add", "--account", "acc_main", "--name", "Stale", "--all-keys"]
STALE = ["--kind", "stale_key_presented"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--threshold", "0"], "threshold: stale_key_presented thresholds count presentations"),
        (["--comparator", "lt"], "comparator: stale_key_presented rules fire when"),
        (["--min-requests", "5"], "min_requests: only error_rate, latency"),
        (["--window", "90s"], "window_s: window must be a whole number of minutes"),
    ],
)
def test_bad_fields_fail_with_one_line(
    extra: list[str], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYPULSE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, [*BASE, *STALE, *extra])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: invalid rule: ") and words in lines[0], result.output


def test_the_api_builds_a_rule_from_the_kind_alone() -> None:
    rule = alert_admin.build_rule(
        {
            "rule_id": "r1",
            "account_id": "acc_main",
            "name": "Stale",
            "scope": {"type": "account"},
            "kind": "stale_key_presented",
            "threshold": None,  # "not given", as the CLI passes omitted options
        }
    )
    assert (rule.threshold, rule.window_s, rule.comparator.value) == (1.0, 900, "gte")
