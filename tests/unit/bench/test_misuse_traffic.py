"""The misuse benchmark's traffic generator: seeded, and its labels agree with the events it
generates (each anomaly is where its label says and nowhere else)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.misuse_traffic import HOUR_MS, Label, Traffic, blocks, generate
from schemas.utc import to_epoch_ms

END = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def traffic() -> tuple[Traffic, dict[str, list[Any]], dict[str, list[Any]]]:
    t = generate(86, END, keys=16, accounts=2, days=16)
    req: dict[str, list[Any]] = defaultdict(list)
    out: dict[str, list[Any]] = defaultdict(list)
    for b in blocks(t):
        assert b.count == len(b.requests["event_id"])
        for name, values in b.requests.items():
            req[name] += values
        for name, values in b.outcomes.items():
            out[name] += values
    return t, req, out


_INDEX: dict[tuple[int, str, str], list[dict[str, Any]]] = {}


def _rows(cols: dict[str, list[Any]], **match: Any) -> list[dict[str, Any]]:
    """The rows whose one column `match` names has the given value (indexed once)."""
    ((column, value),) = match.items()
    if (id(cols), column, "") not in _INDEX:
        names = list(cols)
        _INDEX[(id(cols), column, "")] = []
        for i in range(len(cols["event_id"])):
            row = {n: cols[n][i] for n in names}
            _INDEX.setdefault((id(cols), column, str(row[column])), []).append(row)
    return _INDEX.get((id(cols), column, str(value)), [])


def _ms(label: Label) -> tuple[int, int]:
    return to_epoch_ms(label.start), to_epoch_ms(label.end)


def test_seeded_and_every_kind_labelled_in_the_final_two_weeks(traffic: Any) -> None:
    t, req, _ = traffic
    again = generate(86, END, keys=16, accounts=2, days=16)
    assert again.labels == t.labels and again.keys == t.keys
    assert generate(87, END, keys=16, accounts=2, days=16).labels != t.labels
    kinds = {lb.kind for lb in t.labels}
    assert kinds == {
        "usage_spike", "unknown_ip", "error_pattern", "credential_stuffing",
        "stale_key_presented",
    }  # fmt: skip
    assert all(t.eval_start <= lb.start <= lb.end < t.end for lb in t.labels)
    assert len(set(req["event_id"])) == len(req["event_id"])
    times = req["occurred_at_ms"]
    assert to_epoch_ms(t.start) <= min(times) and max(times) < to_epoch_ms(t.end)


def test_spikes_new_ips_and_bursts_are_in_the_events(traffic: Any) -> None:
    t, req, _ = traffic
    keys = {k.key_id: k for k in t.keys}
    for lb in t.labels:
        a, b = _ms(lb)
        rows = _rows(req, key_id=lb.subject) if lb.subject.startswith("key_") else []
        inside = [r for r in rows if a <= r["occurred_at_ms"] < b]
        if lb.kind == "usage_spike":
            hours = range(a - a % HOUR_MS, b, HOUR_MS)
            expected = (
                sum(t.expected(keys[lb.subject], h) for h in hours)
                * (b - a)
                / (len(hours) * HOUR_MS)
            )
            assert len(inside) >= 0.5 * lb.size * expected, lb
        elif lb.kind == "unknown_ip":
            new = {r["client_ip"] for r in rows} - set(keys[lb.subject].ips)
            assert len(new) == 1, lb
            ip = new.pop()
            used = [r["occurred_at_ms"] for r in rows if r["client_ip"] == ip]
            assert (min(used), max(used), len(used)) == (a, b, lb.size)
        elif lb.kind == "error_pattern":
            share = sum(r["status"] >= 400 for r in inside) / len(inside)
            before = [r for r in rows if a - 86_400_000 <= r["occurred_at_ms"] < a - 3 * HOUR_MS]
            usual = sum(r["status"] >= 400 for r in before) / max(1, len(before))
            assert share >= 0.2 and share - usual >= 0.15, (lb, share, usual)


def test_stuffing_and_revoked_keys_are_in_the_outcomes(traffic: Any) -> None:
    t, req, out = traffic
    keys = {k.key_id: k for k in t.keys}
    for lb in t.labels:
        a, b = _ms(lb)
        if lb.kind == "credential_stuffing":
            ip = lb.subject.removeprefix("ip:")
            rows = _rows(out, client_ip=ip)
            assert all(a <= r["occurred_at_ms"] <= b for r in rows) and b - a <= 5 * 60_000
            distinct = {r["presented_digest"] or r["key_id"] for r in rows}
            assert len(distinct) == lb.size >= 15
            owned = [r for r in rows if r["account_id"] == lb.account_id]
            assert owned and all(keys[r["key_id"]].revoked_at is not None for r in owned)
            assert ip not in set(req["client_ip"])
        elif lb.kind == "stale_key_presented":
            key = keys[lb.subject]
            assert key.revoked_at is not None and key.revoked_at < lb.start
            rows = [r for r in _rows(out, key_id=lb.subject) if r["outcome"] == "revoked"]
            assert sum(a <= r["occurred_at_ms"] <= b for r in rows) >= lb.size
            late = [r for r in _rows(req, key_id=lb.subject)
                    if r["occurred_at_ms"] >= to_epoch_ms(key.revoked_at)]  # fmt: skip
            assert not late
    assert timedelta(days=16) == t.end - t.start
