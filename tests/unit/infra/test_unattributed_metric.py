"""`keypulse_unattributed_events_total{reason}` in the text exposition of a snapshot."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from infra.http.metrics import MetricsSnapshot, render


def _unattributed(snapshot: MetricsSnapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(render(snapshot).decode()):
        for s in family.samples:
            if s.name == "keypulse_unattributed_events_total":
                out[s.labels["reason"]] = s.value
    return out


def test_unattributed_events_are_counted_by_reason() -> None:
    snap = MetricsSnapshot(unattributed_events={"unknown_key": 40, "account_mismatch": 7})
    assert _unattributed(snap) == {"unknown_key": 40, "account_mismatch": 7}


def test_no_worker_no_samples() -> None:
    assert _unattributed(MetricsSnapshot()) == {}
