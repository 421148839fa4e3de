"""Human-readable text shared by the channels (pure)."""

from __future__ import annotations

import re
from datetime import datetime

from schemas.alerts import IP_SUBJECT_PREFIX, Notification, NotificationKind, RuleKind
from schemas.utc import as_utc

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int = 200) -> str:
    """Collapse control characters (CR/LF included) to spaces and cap the length."""
    flat = _CONTROL_RE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_duration(seconds: int) -> str:
    """120 → "2m", 3600 → "1h", 86400*7 → "7d", 90 → "90s"."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_minute(at: datetime) -> str:
    """`2026-11-30 14:02 UTC`: a time in evidence, to the minute."""
    return as_utc(at).strftime("%Y-%m-%d %H:%M UTC")


def format_clock(at: datetime, now: datetime, zone: bool = True) -> str:
    """`12:03 UTC` on the day of `now`, else `2026-11-30 12:03 UTC` (without ` UTC` when
    `zone` is false, for ranges that name it once)."""
    at = as_utc(at)
    text = (
        at.strftime("%H:%M") if at.date() == as_utc(now).date() else at.strftime("%Y-%m-%d %H:%M")
    )
    return f"{text} UTC" if zone else text


def key_label(key_id: str, name: str | None) -> str:
    """`key_ab12 (Production web)`, or the id alone without a name: how evidence names a
    key."""
    return f"{key_id} ({one_line(name, 100)})" if name else key_id


def counted(value: float, one: str, many: str | None = None) -> str:
    """`1 request`, `5,400 requests` (`many` defaults to `one` + "s")."""
    return f"{format_number(value)} {one if value == 1 else many or one + 's'}"


def format_value(n: Notification, value: float | None) -> str:
    """A value in the rule's unit: requests, percent, milliseconds, presentations, a
    robust z-score, new addresses or distinct keys."""
    if value is None:
        return "no data"
    kind = n.rule.kind
    if kind is RuleKind.STALE_KEY_PRESENTED:
        return counted(value, "time")
    if kind in (RuleKind.ERROR_RATE, RuleKind.ERROR_PATTERN):
        return f"{format_number(value)}%"
    if kind is RuleKind.LATENCY:
        return f"{format_number(value)} ms"
    if kind is RuleKind.USAGE_SPIKE:
        return f"z {value:,.1f}"
    if kind is RuleKind.UNKNOWN_IP:
        return counted(value, "new address", "new addresses")
    if kind is RuleKind.CREDENTIAL_STUFFING:
        return counted(value, "distinct key")
    return f"{format_number(value)} requests"


_METRIC_NAMES = {
    RuleKind.STALE_KEY_PRESENTED: "revoked or expired key presented",
    RuleKind.ERROR_RATE: "error rate",
    RuleKind.USAGE_SPIKE: "usage against the usual",
    RuleKind.UNKNOWN_IP: "addresses not used before",
    RuleKind.ERROR_PATTERN: "error share",
    RuleKind.CREDENTIAL_STUFFING: "bad keys presented from one IP",
}


def metric_name(n: Notification) -> str:
    if n.rule.kind is RuleKind.LATENCY:
        return f"{n.rule.percentile.value if n.rule.percentile else ''} latency".strip()
    return _METRIC_NAMES.get(n.rule.kind, "requests")


def state_label(n: Notification) -> str:
    """FIRING for firing and repeats, RESOLVED for resolved."""
    return "RESOLVED" if n.state is NotificationKind.RESOLVED else "FIRING"


def subject_label(n: Notification) -> str:
    """`Production web (key_…)`, or `client IP 203.0.113.9` for an IP subject."""
    if n.key_id.startswith(IP_SUBJECT_PREFIX):
        return f"client IP {n.key_id.removeprefix(IP_SUBJECT_PREFIX)}"
    return f"{one_line(n.key_name)} ({n.key_id})"


def title(n: Notification) -> str:
    """`[FIRING] <rule> on <key name> (key_...)`, or `[RESOLVED] ...`."""
    return one_line(f"[{state_label(n)}] {n.rule.name} on {subject_label(n)}", 250)


def condition(n: Notification) -> str:
    """E.g. `p99 latency 812 ms > 500 ms over 5m`."""
    return (
        f"{metric_name(n)} {format_value(n, n.value)} {n.comparator.symbol} "
        f"{format_value(n, n.threshold)} over {format_duration(n.window_s)}"
    )


def summary_lines(n: Notification) -> list[str]:
    """The plain-text body shared by email and the Slack fallback text."""
    lines = [
        title(n),
        "",
        f"Rule:      {one_line(n.rule.name)} ({n.rule.rule_id})",
        f"Key:       {subject_label(n)}",
        f"Condition: {condition(n)}",
        *([f"Evidence:  {one_line(n.evidence, 500)}"] if n.evidence else []),
        f"State:     {n.state.value}"
        + (f" (repeat {n.repeat_n})" if n.state is NotificationKind.REPEAT else ""),
        f"Started:   {n.started_at.isoformat()}",
    ]
    if n.ended_at is not None:
        lines.append(f"Ended:     {n.ended_at.isoformat()}")
    lines.append(f"Fingerprint: {n.fingerprint}  episode {n.episode}")
    return lines
