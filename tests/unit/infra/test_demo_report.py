"""The demo's report reads in 80 columns (nothing cut short, no line longer), and the demo
keeps serving after it only when its stdout is a terminal."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from rich.console import Console

from infra.tools.demo import keeps_serving, report

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _row(name: str, key_id: str, n: int) -> dict[str, object]:
    return {
        "name": name, "key_id": key_id, "type": "live", "status": "active",
        "created_at": "2026-04-01T10:00:00Z", "expiring_soon": False,
        "last_used_at": (NOW - timedelta(minutes=2)).isoformat(),
        "requests_24h": n, "requests_7d": n * 7, "requests_30d": n * 30,
    }  # fmt: skip


def test_the_report_reads_in_80_columns() -> None:
    rows = [
        _row("Production web", "key_A1b2C3d4E5f6G7h8", 48_211),
        _row("Batch exporter", "key_Z9y8X7w6V5u4T3s2", 19_700),
    ]
    body = {
        "type": "alert.firing",
        "data": {
            "state": "firing",
            "rule": {"name": "Exporter error rate", "kind": "error_rate"},
            "key": {"name": "Batch exporter", "id": "key_Z9y8X7w6V5u4T3s2"},
            "value": 41.25, "comparator": "gt", "threshold": 25, "window_s": 60,
            "started_at": "2026-05-01T11:59:02.123000Z",
        },
    }  # fmt: skip
    headers = {
        "webhook-id": "msg_01JT6W3ZQ8X8Y5V6N4K2H7M9PA",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    }
    mail = EmailMessage()
    mail["To"] = "oncall@demo.example"
    mail["Subject"] = "[FIRING] Exporter error rate on Batch exporter (key_Z9y8X7w6V5u4T3s2)"
    url = "http://127.0.0.1:41234/hooks/demo"
    rules = ["Exporter error rate", "Exporter p95 latency"]
    console = Console(width=80, record=True, file=io.StringIO())
    for shown in report(rows, NOW, 80, (body, headers), mail, (url, 3, 2), rules):
        console.print(shown)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    words = " ".join(text.replace("│", " ").split())
    for expected in (
        "Production web key_A1b2C3d4E5f6G7h8 active 2m ago 48k 337k 1.4M",
        "value 41.2 gt threshold 25 over 60 s",
        "subject [FIRING] Exporter error rate on Batch exporter (key_Z9y8X7w6V5u4T3s2)",
        "webhook-signature v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN...",
        "received 3 webhook(s), 2 email(s)",
    ):
        assert expected in words, expected


def test_it_keeps_serving_only_in_a_terminal() -> None:
    assert keeps_serving(True) and not keeps_serving(False)
