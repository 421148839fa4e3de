"""What the key page shows, decided from what was read (pure: every time is judged at the
`now` given).

`key_detail(traffic, now)` turns a `KeyTraffic` (the key's metadata, its usage in each
window, the chosen window's timeseries, its client addresses, verification outcomes and
use, and the key it was rolled to or from) into a `KeyDetailView`: header fields, cards,
the charts' series (one bucket per `STEPS[window]`, empty buckets filled: zero requests,
no latency), a sentence per chart for those who cannot see the canvas, the address and
outcome tables, and the roll status ("Rolled to key_… on …; still used 14 min ago from
203.0.113.7").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from infra.console.formats import DASH, ago, until, when
from infra.http.key_views import KeyMeta
from projections.key_activity import UNUSED, KeyActivity
from projections.key_traffic import RecentIps
from projections.queries import EMPTY_USAGE, HOURS_FROM, Point, Usage
from projections.windows import Window, WindowPlan, plan_window
from schemas.utc import EPOCH, as_utc

__all__ = [
    "OUTCOMES",
    "STEPS",
    "KeyDetailView",
    "KeyTraffic",
    "chart_buckets",
    "key_detail",
    "parse_window",
    "window_plan",
]

STEPS: dict[Window, timedelta] = {
    Window.H24: timedelta(hours=1),
    Window.D7: timedelta(hours=6),
    Window.D30: timedelta(days=1),
}
"""The charts' bucket width per window (about 24-30 buckets: readable at 390 px)."""
STEP_NOUN = {Window.H24: "hour", Window.D7: "6 hours", Window.D30: "day"}
WINDOW_WORDS = {Window.H24: "24 hours", Window.D7: "7 days", Window.D30: "30 days"}
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("valid", "Valid"),
    ("revoked", "Revoked key"),
    ("expired", "Expired key"),
    ("deleted", "Deleted key"),
    ("ip_not_allowed", "IP not allowed"),
    ("quota_exceeded", "Quota exceeded"),
)
"""The verdicts a verification of a known key can give (malformed and unknown name no
key), in the order shown."""
ACCESS_WORDS = {"full": "Full (product API)", "read_only": "Read-only", "admin": "Admin"}


def parse_window(value: str | None) -> Window:
    """The `window` query parameter; anything else is the default 24 h."""
    try:
        return Window(value or Window.H24.value)
    except ValueError:
        return Window.H24


def window_plan(window: Window, now: datetime) -> WindowPlan:
    """The window's [start, end), as the usage queries cut it (minute-aligned)."""
    return plan_window(window.length, as_utc(now), HOURS_FROM)


# --------------------------------------------------------------------------- formatting


def _count(n: int) -> str:
    return f"{n:,}"


def _percent(part: int, whole: int) -> str:
    return DASH if not whole else f"{100 * part / whole:.1f} %"


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f} ms"


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True)
class KeyTraffic:
    """What the page read about one key."""

    meta: KeyMeta
    window: Window
    summary: Mapping[Window, Usage]
    points: Sequence[Point]
    activity: Mapping[str, KeyActivity]
    """This key's use and that of `partner`."""
    partner: KeyMeta | None
    """The key it was rolled to (`meta.replaced_by`) or from (`meta.replaces`)."""
    ips: RecentIps
    outcomes: Mapping[str, int]


@dataclass(frozen=True)
class Field:
    label: str
    value: str
    mono: bool = False


@dataclass(frozen=True)
class Card:
    name: str
    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True)
class WindowLink:
    value: str
    label: str
    current: bool


@dataclass(frozen=True)
class Bucket:
    at: datetime
    label: str
    requests: int
    errors_4xx: int
    errors_5xx: int
    p95_ms: float | None

    @property
    def p95(self) -> str:
        return _ms(self.p95_ms)


@dataclass(frozen=True)
class Chart:
    name: str
    """`requests`, `errors` or `latency` (console.js draws each kind)."""
    title: str
    summary: str


@dataclass(frozen=True)
class IpRow:
    ip: str
    requests: str
    first_seen: str
    last_seen: str
    last_seen_ago: str


@dataclass(frozen=True)
class OutcomeRow:
    outcome: str
    label: str
    count: str


@dataclass(frozen=True)
class Rotation:
    """`direction` "to": this key was rolled to `partner_id`; "from": it was made by
    rolling `partner_id`."""

    direction: str
    partner_id: str
    at: str
    lines: tuple[str, ...]
    warn: bool


@dataclass(frozen=True)
class KeyDetailView:
    key: KeyMeta
    fields: tuple[Field, ...]
    window: Window
    window_words: str
    windows: tuple[WindowLink, ...]
    request_cards: tuple[Card, ...]
    error_cards: tuple[Card, ...]
    latency_cards: tuple[Card, ...]
    step_noun: str
    buckets: tuple[Bucket, ...]
    charts: tuple[Chart, ...]
    ips: tuple[IpRow, ...]
    ips_note: str
    outcomes: tuple[OutcomeRow, ...]
    outcomes_total: int
    rotation: Rotation | None

    @property
    def series(self) -> dict[str, Any]:
        """The charts' data (the page's JSON block): x in epoch seconds."""
        return {
            "step_s": int(STEPS[self.window].total_seconds()),
            "x": [int((b.at - EPOCH).total_seconds()) for b in self.buckets],
            "requests": [b.requests for b in self.buckets],
            "errors_4xx": [b.errors_4xx for b in self.buckets],
            "errors_5xx": [b.errors_5xx for b in self.buckets],
            "p95_ms": [b.p95_ms for b in self.buckets],
        }


def _fields(meta: KeyMeta, activity: KeyActivity, now: datetime) -> tuple[Field, ...]:
    expires = DASH if meta.expires_at is None else when(meta.expires_at)
    if meta.expires_at is not None:
        left = (meta.expires_at - now).total_seconds()
        expires += f" ({'expired' if left <= 0 else until(meta.expires_at, now)})"
    used = activity.last_used_at
    last = "never" if used is None else f"{ago(used, now)} ({when(used)})"
    if used is not None and activity.last_used_ip:
        last += f" from {activity.last_used_ip}"
    out = [
        Field("Key ID", meta.key_id, mono=True),
        Field("Hint", meta.hint or DASH, mono=True),
        Field("Type", meta.type),
        Field("Access", ACCESS_WORDS.get(meta.access, meta.access)),
        Field(
            "Created", when(meta.created_at) + (f" by {meta.created_by}" if meta.created_by else "")
        ),
        Field("Expires", "never" if meta.expires_at is None else expires),
        Field("Last used", last),
        Field("Allowed networks", ", ".join(meta.allowed_cidrs) or "anywhere"),
    ]
    if meta.revoked_at is not None:
        reason = f" ({meta.revoke_reason.replace('_', ' ')})" if meta.revoke_reason else ""
        out.insert(5, Field("Revoked", when(meta.revoked_at) + reason))
    return tuple(out)


def _cards(traffic: KeyTraffic) -> tuple[tuple[Card, ...], tuple[Card, ...], tuple[Card, ...]]:
    requests = tuple(
        Card(f"requests-{w.value}", f"Requests, {WINDOW_WORDS[w]}", _count(u.requests))
        for w in Window
        for u in [traffic.summary.get(w, EMPTY_USAGE)]
    )
    u = traffic.summary.get(traffic.window, EMPTY_USAGE)
    n = u.requests
    errors = (
        Card(
            "errors-4xx",
            "4xx rate",
            _percent(u.errors_4xx, n),
            f"{_count(u.errors_4xx)} of {_count(n)}",
        ),
        Card(
            "errors-5xx",
            "5xx rate",
            _percent(u.errors_5xx, n),
            f"{_count(u.errors_5xx)} of {_count(n)}",
        ),
        Card(
            "errors-all",
            "Error rate",
            _percent(u.errors_4xx + u.errors_5xx, n),
            f"{_count(u.errors_4xx + u.errors_5xx)} of {_count(n)}",
        ),
    )
    latency = (
        Card("latency-p50", "Latency p50", _ms(u.p50_ms)),
        Card("latency-p95", "Latency p95", _ms(u.p95_ms)),
        Card("latency-p99", "Latency p99", _ms(u.p99_ms)),
    )
    return requests, errors, latency


def _bucket_label(at: datetime, window: Window) -> str:
    return at.strftime("%b %d" if window is Window.D30 else "%b %d %H:%M")


def chart_buckets(points: Sequence[Point], window: Window, plan: WindowPlan) -> tuple[Bucket, ...]:
    """One bucket per step from the one holding the window's start to its end (aligned to
    the epoch, as the timeseries query buckets), the points' figures where they fall."""
    step = int(STEPS[window].total_seconds())
    by_start = {int((as_utc(p.at) - EPOCH).total_seconds()): p for p in points}
    first = int((plan.start - EPOCH).total_seconds()) // step * step
    last = int((plan.end - EPOCH).total_seconds())
    out = []
    for t in range(first, last, step):
        at = EPOCH + timedelta(seconds=t)
        p = by_start.get(t)
        out.append(
            Bucket(
                at,
                _bucket_label(at, window),
                p.requests if p else 0,
                p.errors_4xx if p else 0,
                p.errors_5xx if p else 0,
                p.p95_ms if p else None,
            )
        )
    return tuple(out)


def _charts(rows: Sequence[Bucket], window: Window, usage: Usage) -> tuple[Chart, ...]:
    noun, words = STEP_NOUN[window], WINDOW_WORDS[window]
    per = f"per {noun} over the last {words}"
    began = f"the {noun} from"
    total = sum(b.requests for b in rows)
    if not total:
        empty = f"No requests in the last {words}."
        return (
            Chart("requests", f"Requests {per}", empty),
            Chart("errors", f"Errors {per}", empty),
            Chart("latency", f"Latency p95 {per}", empty),
        )
    busiest = max(rows, key=lambda b: b.requests)
    e4, e5 = sum(b.errors_4xx for b in rows), sum(b.errors_5xx for b in rows)
    worst = max(rows, key=lambda b: b.errors_4xx + b.errors_5xx)
    errors = f"{_count(e4)} 4xx and {_count(e5)} 5xx responses in all"
    if e4 + e5:
        errors += (
            f"; the most, {_count(worst.errors_4xx + worst.errors_5xx)}, in {began} "
            f"{when(worst.at)}"
        )
    p95s = [b.p95_ms for b in rows if b.p95_ms is not None]
    latency = f"p95 of each {noun} from {_ms(min(p95s))} to {_ms(max(p95s))}"
    latency += f"; {_ms(usage.p95_ms)} over the whole window"
    return (
        Chart(
            "requests",
            f"Requests {per}",
            f"{_count(total)} requests in all; the most, {_count(busiest.requests)}, "
            f"in {began} {when(busiest.at)}.",
        ),
        Chart("errors", f"Errors {per}", errors + "."),
        Chart("latency", f"Latency p95 {per}", latency + "."),
    )


def _ips(
    found: RecentIps, window: Window, plan: WindowPlan, now: datetime
) -> tuple[tuple[IpRow, ...], str]:
    rows = tuple(
        IpRow(
            ip.ip,
            _count(ip.requests),
            when(ip.first_seen),
            when(ip.last_seen),
            ago(ip.last_seen, now),
        )
        for ip in found.ips
    )
    day = plan.start.strftime("%Y-%m-%d")
    shown = (
        f"the newest {len(rows)} of {_count(found.total)} addresses"
        if found.total > len(rows)
        else f"{len(rows)} address{'es' if len(rows) != 1 else ''}"
    )
    note = (
        f"Client addresses used in the last {WINDOW_WORDS[window]}, newest first ({shown}). "
        f"Requests and first seen count whole UTC days from {day}."
    )
    return rows, note


def _rotation(traffic: KeyTraffic, now: datetime) -> Rotation | None:
    meta, partner = traffic.meta, traffic.partner
    if meta.replaced_by is not None:
        rolled_at = partner.created_at if partner is not None else None
        lines = []
        if meta.expires_at is not None:
            if now >= meta.expires_at:
                lines.append(f"This old key expired at {when(meta.expires_at)}.")
            else:
                lines.append(
                    f"This old key stays valid until {when(meta.expires_at)} "
                    f"({until(meta.expires_at, now)})."
                )
        use = traffic.activity.get(meta.key_id, UNUSED)
        still = _used_since(use, rolled_at, now)
        if still:
            lines.append(f"Still used {still}: move that client to the new key.")
        else:
            lines.append("Not used since the roll.")
        return Rotation("to", meta.replaced_by, when(rolled_at), tuple(lines), bool(still))
    if meta.replaces is not None:
        lines = []
        if partner is not None and partner.expires_at is not None:
            verb = "expired at" if now >= partner.expires_at else "stays valid until"
            lines.append(f"The old key {verb} {when(partner.expires_at)}.")
        use = traffic.activity.get(meta.replaces, UNUSED)
        still = _used_since(use, meta.created_at, now)
        if still:
            lines.append(f"The old key was still used {still}.")
        else:
            lines.append("The old key has not been used since the roll.")
        return Rotation("from", meta.replaces, when(meta.created_at), tuple(lines), bool(still))
    return None


def _used_since(use: KeyActivity, since: datetime | None, now: datetime) -> str:
    """`14 min ago from 203.0.113.7` when the key was used at or after `since`, else ""."""
    at = use.last_used_at
    if at is None or since is None or at < since:
        return ""
    return ago(at, now) + (f" from {use.last_used_ip}" if use.last_used_ip else "")


def key_detail(traffic: KeyTraffic, now: datetime) -> KeyDetailView:
    window = traffic.window
    plan = window_plan(window, now)
    requests, errors, latency = _cards(traffic)
    rows = chart_buckets(traffic.points, window, plan)
    usage = traffic.summary.get(window, EMPTY_USAGE)
    ips, note = _ips(traffic.ips, window, plan, now)
    return KeyDetailView(
        key=traffic.meta,
        fields=_fields(traffic.meta, traffic.activity.get(traffic.meta.key_id, UNUSED), now),
        window=window,
        window_words=WINDOW_WORDS[window],
        windows=tuple(WindowLink(w.value, WINDOW_WORDS[w], w is window) for w in Window),
        request_cards=requests,
        error_cards=errors,
        latency_cards=latency,
        step_noun=STEP_NOUN[window],
        buckets=rows,
        charts=_charts(rows, window, usage),
        ips=ips,
        ips_note=note,
        outcomes=tuple(
            OutcomeRow(o, label, _count(traffic.outcomes.get(o, 0))) for o, label in OUTCOMES
        ),
        outcomes_total=sum(traffic.outcomes.get(o, 0) for o, _ in OUTCOMES),
        rotation=_rotation(traffic, now),
    )
