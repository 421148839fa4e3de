"""Alert rules, values and channels in words, for the Alerts page (pure).

`condition_words(rule)` reads like "error rate > 5% over 5 min, at least 50 requests";
`amount(kind, value)` puts a value or threshold in the rule's unit; `channel_words`
describes a channel from its JSON data, printing only what that data holds of a secret
(`infra.alert_admin.masked_rule` masks them first) and nothing with `secrets=False`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerting.render import counted, format_number
from schemas.alerts import (
    AlertRule,
    ErrorClass,
    IpGranularity,
    RuleKind,
    SpikeDirection,
    TransitionReason,
    UrlError,
    parse_http_url,
)

KIND_LABELS: dict[RuleKind, str] = {
    RuleKind.REQUEST_COUNT: "Requests exceed a threshold",
    RuleKind.ERROR_RATE: "Error rate above a percentage",
    RuleKind.LATENCY: "Latency above a threshold",
    RuleKind.USAGE_SPIKE: "Usage spike against the key's usual traffic",
    RuleKind.UNKNOWN_IP: "Requests from an IP address not used before",
    RuleKind.ERROR_PATTERN: "Errors above the key's usual share",
    RuleKind.CREDENTIAL_STUFFING: "Many bad keys presented from one IP",
    RuleKind.STALE_KEY_PRESENTED: "Revoked or expired key still presented",
}
"""The kinds in the order the Add Alert form offers them, with what each watches."""

THRESHOLD_UNITS: dict[RuleKind, str] = {
    RuleKind.REQUEST_COUNT: "requests in the window",
    RuleKind.ERROR_RATE: "percent of requests (4xx and 5xx)",
    RuleKind.LATENCY: "milliseconds at the percentile",
    RuleKind.USAGE_SPIKE: "robust z-score, 1 to 100",
    RuleKind.UNKNOWN_IP: "new addresses in the window",
    RuleKind.ERROR_PATTERN: "percent of requests",
    RuleKind.CREDENTIAL_STUFFING: "distinct bad keys from one IP",
    RuleKind.STALE_KEY_PRESENTED: "presentations of a revoked or expired key",
}

_ERROR_CLASSES = {
    ErrorClass.ALL: "errors (4xx and 5xx)",
    ErrorClass.CLIENT: "4xx responses",
    ErrorClass.SERVER: "5xx responses",
    ErrorClass.UNAUTHORIZED: "401 responses",
    ErrorClass.FORBIDDEN: "403 responses",
    ErrorClass.TOO_MANY: "429 responses",
}
_DIRECTIONS = {
    SpikeDirection.RISE: "requests rise",
    SpikeDirection.DROP: "requests drop",
    SpikeDirection.BOTH: "requests rise or drop",
}
REASONS: dict[TransitionReason, str] = {
    TransitionReason.BREACHED: "breached",
    TransitionReason.FOR_ELAPSED: "breached for the pending time",
    TransitionReason.CLEARED: "cleared",
    TransitionReason.KEEP_FIRING_ELAPSED: "stayed clear",
    TransitionReason.BREACHED_AGAIN: "breached again",
    TransitionReason.REPEAT: "still firing (repeat)",
    TransitionReason.NO_DATA: "no data",
    TransitionReason.LEARNING: "learning the key's usual",
    TransitionReason.QUERY_ERROR: "query failed",
    TransitionReason.DATA_RETURNED: "data returned",
    TransitionReason.RULE_DELETED: "rule deleted",
}


def duration_words(seconds: int) -> str:
    """90 → "90 s", 300 → "5 min", 3600 → "1 h", 1209600 → "14 d"."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def amount(kind: RuleKind, value: float | None) -> str:
    """A value or threshold in the kind's unit ("5%", "812 ms", "z 4.2", "3 new addresses")."""
    if value is None:
        return "no data"
    if kind in (RuleKind.ERROR_RATE, RuleKind.ERROR_PATTERN):
        return f"{format_number(value)}%"
    if kind is RuleKind.LATENCY:
        return f"{format_number(value)} ms"
    if kind is RuleKind.USAGE_SPIKE:
        return f"z {value:,.1f}"
    if kind is RuleKind.UNKNOWN_IP:
        return counted(value, "new address", "new addresses")
    if kind is RuleKind.CREDENTIAL_STUFFING:
        return counted(value, "distinct bad key")
    if kind is RuleKind.STALE_KEY_PRESENTED:
        return counted(value, "time")
    return counted(value, "request")


def _measure(rule: AlertRule) -> str:
    """What is compared with the threshold, before the comparator."""
    kind = rule.kind
    if kind is RuleKind.ERROR_RATE:
        return "error rate"
    if kind is RuleKind.LATENCY:
        return f"{rule.percentile.value if rule.percentile else ''} latency".strip()
    if kind is RuleKind.USAGE_SPIKE:
        return _DIRECTIONS[rule.direction or SpikeDirection.RISE] + " against the usual:"
    if kind is RuleKind.UNKNOWN_IP:
        network = rule.granularity is IpGranularity.PREFIX
        lookback = duration_words(rule.lookback_s or 14 * 86_400)
        what = "networks (/24, /48)" if network else "addresses"
        return f"{what} not used in the previous {lookback}:"
    if kind is RuleKind.ERROR_PATTERN:
        return _ERROR_CLASSES[rule.status_class or ErrorClass.ALL] + " share"
    if kind is RuleKind.CREDENTIAL_STUFFING:
        return "one IP presents"
    if kind is RuleKind.STALE_KEY_PRESENTED:
        return "a revoked or expired key presented"
    return "requests"


def condition_words(rule: AlertRule) -> str:
    """The rule's condition in words, e.g. "error rate > 5% over 5 min, at least 50
    requests" or "p99 latency > 500 ms over 5 min, for 2 min"."""
    text = (
        f"{_measure(rule)} {rule.comparator.symbol} {amount(rule.kind, rule.threshold)} "
        f"over {duration_words(rule.window_s)}"
    )
    if rule.kind is RuleKind.ERROR_PATTERN:
        margin = format_number(rule.margin if rule.margin is not None else 10)
        baseline = duration_words(rule.lookback_s or 7 * 86_400)
        text += f", and {margin} points above the key's usual share (previous {baseline})"
    if rule.min_requests is not None:
        text += f", at least {counted(rule.min_requests, 'request')}"
    if rule.for_s:
        text += f", for {duration_words(rule.for_s)}"
    return text


def scope_words(rule: AlertRule, key_names: Mapping[str, str]) -> str:
    """ "Whole account", or the key's name and id."""
    key_id = rule.key_id
    if key_id is None:
        return "Whole account"
    name = key_names.get(key_id)
    return f"{name} ({key_id})" if name else key_id


def _host(url: str) -> str:
    try:
        return parse_http_url(url).host
    except UrlError:
        return "?"


def channel_words(data: Mapping[str, Any], secrets: bool = True) -> str:
    """E.g. "Email: ops@example.com", "Slack #alerts (token xoxb-1…)", "Slack incoming
    webhook on hooks.slack.com", "Webhook https://example.com/hook (secret whsec_…)".

    A Slack incoming-webhook URL is itself a credential: only its host is shown."""
    kind = data.get("type")
    if kind == "email":
        return "Email: " + ", ".join(str(a) for a in data.get("to", []))
    if kind == "slack":
        if data.get("webhook_url"):
            return f"Slack incoming webhook on {_host(str(data['webhook_url']))}"
        token = f" (token {data['bot_token']})" if secrets and data.get("bot_token") else ""
        return f"Slack {data.get('channel', '')}{token}"
    secret = f" (secret {data['secret']})" if secrets and data.get("secret") else ""
    return f"Webhook {data.get('url', '')}{secret}"
