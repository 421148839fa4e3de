"""`keypulse rules list` and `deliveries list` read in an 80-column terminal: every id
whole, no cell cut short with an ellipsis, no line wider than the terminal."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from infra.cli.alerts import deliveries_table, rules_table

RULES: list[dict[str, Any]] = [
    {
        "rule_id": "rule_27795524c809",
        "account_id": "acc_demo",
        "name": "Checkout error rate, the [bold]production[/bold] one",
        "kind": "error_rate",
        "percentile": None,
        "window_s": 300,
        "comparator": "gt",
        "threshold": 5,
        "scope": {"type": "key", "key_id": "key_blj40LA61uxt4e49"},
        "enabled": True,
        "channels": [{"type": "email"}, {"type": "webhook"}],
    },
    {
        "rule_id": "rule_b2b25c0bde25",
        "account_id": "acc_demo",
        "name": "Latency",
        "kind": "latency",
        "percentile": "p95",
        "window_s": 3600,
        "comparator": "gte",
        "threshold": 250.5,
        "scope": {"type": "account"},
        "enabled": False,
        "channels": [],
    },
]
DELIVERIES: list[dict[str, Any]] = [
    {
        "delivery_id": "dlv_0123456789abcdef0123",
        "status": "dead",
        "attempt": 3,
        "at": "2026-12-01T19:50:12.345678+00:00",
        "channel_id": "chn_abcdef",
        "state": "firing",
        "rule": "Checkout error rate",
        "key_id": "key_blj40LA61uxt4e49",
        "detail": "HTTP 400: no such hook; the endpoint refused the payload permanently",
    }
]


def rendered(table: Any, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_rules_fit_the_terminal_with_ids_whole(width: int) -> None:
    text = rendered(rules_table(RULES), width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    for rule in RULES:
        assert rule["rule_id"] in text
    assert "key_blj40LA61uxt4e49" in text
    assert "[bold]" in text.replace("\n", "").replace(" ", "")  # a name is never markup
    words = text.split()
    for word in (
        "error_rate",
        ">",
        "300s",
        "p95",
        "≥",
        "250.5",
        "3600s",
        "webhook",
        "all",
        "disabled",
    ):
        assert word in words
    assert "rules show RULE_ID" in text


@pytest.mark.parametrize("width", [80, 120])
def test_deliveries_fit_the_terminal_with_ids_whole(width: int) -> None:
    text = rendered(deliveries_table(DELIVERIES), width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    assert "dlv_0123456789abcdef0123" in text
    assert "12-01 19:50" in text
    assert "key_blj40LA61uxt4e49" in text
    words = " ".join(text.split())
    assert "refused the" in words and "dead" in words
