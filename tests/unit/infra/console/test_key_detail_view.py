"""`infra.console.key_detail_view`: what the key page shows, decided at a given `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from infra.console.formats import when
from infra.console.key_detail_view import (
    STEPS,
    KeyTraffic,
    chart_buckets,
    key_detail,
    parse_window,
    window_plan,
)
from infra.http.key_views import KeyMeta
from projections.key_activity import KeyActivity
from projections.key_traffic import ClientIp, RecentIps
from projections.queries import Point, Usage
from projections.windows import Window

NOW = datetime(2025, 6, 10, 12, 30, 20, tzinfo=UTC)
CREATED = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def _meta(**changes: Any) -> KeyMeta:
    fields: dict[str, Any] = {
        "id": "key_a",
        "key_id": "key_a",
        "name": "Production web",
        "type": "live",
        "access": "full",
        "status": "active",
        "hint": "pk_live_Ab3x…",
        "created_at": CREATED,
        "created_by": "key_admin",
        "revoked_at": None,
        "revoke_reason": None,
    }
    fields.update(changes)
    return KeyMeta(**fields)


def _traffic(**changes: Any) -> KeyTraffic:
    fields: dict[str, Any] = {
        "meta": _meta(),
        "window": Window.H24,
        "summary": {
            Window.H24: Usage(200, 30, 10, 0, 0, 12.0, 80.25, 99.0),
            Window.D7: Usage(900, 30, 10, 0, 0, 1.0, 2.0, 3.0),
            Window.D30: Usage(1234, 30, 10, 0, 0, 1.0, 2.0, 3.0),
        },
        "points": [],
        "activity": {},
        "partner": None,
        "ips": RecentIps((), 0),
        "outcomes": {},
    }
    fields.update(changes)
    return KeyTraffic(**fields)


def test_the_window_parameter_defaults_to_24h() -> None:
    assert parse_window("7d") is Window.D7
    assert parse_window("30d") is Window.D30
    assert parse_window("") is Window.H24
    assert parse_window(None) is Window.H24
    assert parse_window("1y") is Window.H24


def test_cards_show_each_windows_requests_and_the_chosen_windows_rates() -> None:
    view = key_detail(_traffic(), NOW)
    assert [c.value for c in view.request_cards] == ["200", "900", "1,234"]
    errors = {c.name: (c.value, c.detail) for c in view.error_cards}
    assert errors == {
        "errors-4xx": ("15.0 %", "30 of 200"),
        "errors-5xx": ("5.0 %", "10 of 200"),
        "errors-all": ("20.0 %", "40 of 200"),
    }
    assert [c.value for c in view.latency_cards] == ["12.0 ms", "80.2 ms", "99.0 ms"]
    assert [(w.value, w.current) for w in view.windows] == [
        ("24h", True),
        ("7d", False),
        ("30d", False),
    ]


def test_a_key_without_requests_shows_dashes_and_says_so() -> None:
    view = key_detail(_traffic(summary={}), NOW)
    assert [c.value for c in view.request_cards] == ["0", "0", "0"]
    assert {c.value for c in view.error_cards + view.latency_cards} == {"—"}
    assert {c.summary for c in view.charts} == {"No requests in the last 24 hours."}
    assert all(b.requests == 0 and b.p95_ms is None for b in view.buckets)


@pytest.mark.parametrize("window", list(Window))
def test_buckets_cover_the_window_aligned_with_the_gaps_filled(window: Window) -> None:
    plan = window_plan(window, NOW)
    step = STEPS[window]
    inside = plan.end - 2 * step
    aligned = datetime.fromtimestamp(
        inside.timestamp() // step.total_seconds() * step.total_seconds(), UTC
    )
    rows = chart_buckets([Point(aligned, 7, 1, 2, 40.0)], window, plan)
    assert rows[0].at <= plan.start < rows[0].at + step
    assert rows[-1].at < plan.end <= rows[-1].at + step
    assert all(b.at - a.at == step for a, b in pairwise(rows))
    filled = [b for b in rows if b.requests]
    assert [(b.at, b.requests, b.errors_4xx, b.errors_5xx, b.p95_ms) for b in filled] == [
        (aligned, 7, 1, 2, 40.0)
    ]
    assert sum(1 for b in rows if b.p95_ms is None) == len(rows) - 1


def test_the_series_and_chart_summaries_carry_the_buckets() -> None:
    plan = window_plan(Window.H24, NOW)
    busy = plan.end.replace(minute=0, second=0) - timedelta(hours=3)
    points = [
        Point(busy, 50, 5, 1, 90.0),
        Point(busy + timedelta(hours=1), 20, 0, 0, 30.0),
    ]
    view = key_detail(_traffic(points=points), NOW)
    series = view.series
    assert series["step_s"] == 3600
    assert len(series["x"]) == len(view.buckets) == 25
    assert sum(series["requests"]) == 70
    assert series["p95_ms"].count(None) == 23
    summaries = {c.name: c.summary for c in view.charts}
    assert summaries["requests"] == (
        f"70 requests in all; the most, 50, in the hour from {when(busy)}."
    )
    assert summaries["errors"].startswith("5 4xx and 1 5xx responses in all; the most, 6")
    assert summaries["latency"] == (
        "p95 of each hour from 30.0 ms to 90.0 ms; 80.2 ms over the whole window."
    )


def test_header_fields_say_expiry_last_use_and_revocation() -> None:
    meta = _meta(
        status="revoked",
        revoked_at=NOW - timedelta(days=1),
        revoke_reason="compromised",
        expires_at=NOW + timedelta(days=3),
        allowed_cidrs=["10.0.0.0/8"],
    )
    used = KeyActivity(NOW - timedelta(minutes=5), "203.0.113.7", 0, 0, 0, 0)
    fields = {
        f.label: f.value
        for f in key_detail(_traffic(meta=meta, activity={"key_a": used}), NOW).fields
    }
    assert fields["Expires"] == f"{when(meta.expires_at)} (in 3 days)"
    assert fields["Last used"] == f"5 min ago ({when(used.last_used_at)}) from 203.0.113.7"
    assert fields["Revoked"] == f"{when(meta.revoked_at)} (compromised)"
    assert fields["Allowed networks"] == "10.0.0.0/8"
    assert fields["Access"] == "Full (product API)"
    never = {f.label: f.value for f in key_detail(_traffic(), NOW).fields}
    assert (never["Expires"], never["Last used"]) == ("never", "never")


def test_an_old_rolled_key_says_whether_it_is_still_used() -> None:
    rolled_at = NOW - timedelta(hours=1)
    old = _meta(replaced_by="key_b", expires_at=rolled_at + timedelta(hours=24))
    new = _meta(key_id="key_b", id="key_b", replaces="key_a", created_at=rolled_at)
    before = KeyActivity(rolled_at - timedelta(minutes=1), "198.51.100.1", 0, 0, 0, 0)
    quiet = key_detail(_traffic(meta=old, partner=new, activity={"key_a": before}), NOW).rotation
    assert quiet is not None
    assert (quiet.direction, quiet.partner_id, quiet.at, quiet.warn) == (
        "to",
        "key_b",
        when(rolled_at),
        False,
    )
    assert quiet.lines == (
        f"This old key stays valid until {when(old.expires_at)} (in 23 h).",
        "Not used since the roll.",
    )
    after = KeyActivity(NOW - timedelta(minutes=14), "203.0.113.7", 0, 0, 0, 0)
    busy = key_detail(_traffic(meta=old, partner=new, activity={"key_a": after}), NOW).rotation
    assert busy is not None and busy.warn
    assert (
        busy.lines[-1] == "Still used 14 min ago from 203.0.113.7: move that client to the new key."
    )
    later = NOW + timedelta(days=2)
    expired = key_detail(_traffic(meta=old, partner=new), later).rotation
    assert expired is not None
    assert expired.lines[0] == f"This old key expired at {when(old.expires_at)}."


def test_a_new_rolled_key_tells_of_the_old_keys_use() -> None:
    rolled_at = NOW - timedelta(hours=1)
    old = _meta(replaced_by="key_b", expires_at=rolled_at + timedelta(hours=24))
    new = _meta(key_id="key_b", id="key_b", replaces="key_a", created_at=rolled_at)
    after = KeyActivity(NOW - timedelta(minutes=3), "203.0.113.7", 0, 0, 0, 0)
    rotation = key_detail(_traffic(meta=new, partner=old, activity={"key_a": after}), NOW).rotation
    assert rotation is not None
    assert (rotation.direction, rotation.partner_id, rotation.warn) == ("from", "key_a", True)
    assert rotation.lines == (
        f"The old key stays valid until {when(old.expires_at)}.",
        "The old key was still used 3 min ago from 203.0.113.7.",
    )
    unused = key_detail(_traffic(meta=new, partner=old), NOW).rotation
    assert unused is not None and not unused.warn
    assert unused.lines[-1] == "The old key has not been used since the roll."
    assert key_detail(_traffic(), NOW).rotation is None


def test_addresses_and_outcomes() -> None:
    seen = NOW - timedelta(minutes=20)
    ips = RecentIps((ClientIp("198.51.100.1", seen - timedelta(hours=2), seen, 1500),), 31)
    outcomes = {"valid": 12, "revoked": 2, "malformed": 99}
    view = key_detail(_traffic(ips=ips, outcomes=outcomes, window=Window.D7), NOW)
    assert [(r.ip, r.requests, r.last_seen_ago) for r in view.ips] == [
        ("198.51.100.1", "1,500", "20 min ago")
    ]
    assert view.ips_note == (
        "Client addresses used in the last 7 days, newest first (the newest 1 of 31 "
        "addresses). Requests and first seen count whole UTC days from 2025-06-03."
    )
    assert [(o.outcome, o.count) for o in view.outcomes] == [
        ("valid", "12"),
        ("revoked", "2"),
        ("expired", "0"),
        ("deleted", "0"),
        ("ip_not_allowed", "0"),
        ("quota_exceeded", "0"),
    ]
    assert view.outcomes_total == 14
