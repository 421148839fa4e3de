"""The Add Alert form (pure): its fields, which kinds take which, the key choices, and the
rule data it gives `infra.alert_admin.build_rule`.

Empty fields are "not given" (the schema's defaults, e.g. `KIND_DEFAULTS`, apply); the
fields of other kinds than the chosen one are ignored, so a value left in a hidden field
never makes the rule invalid. Channels come from `alert_admin.channels_from_options`, as
on the command line; a webhook channel gets the signing secret the caller generated.
The Slack bot token is never put back into a re-rendered form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from infra.alert_admin import channels_from_options
from infra.console.alert_words import KIND_LABELS, duration_words
from schemas.alerts import KIND_DEFAULTS, RuleKind
from schemas.key_ledger import KeyRecord, KeyStatus

FIELD_KINDS: dict[str, frozenset[RuleKind]] = {
    "percentile": frozenset({RuleKind.LATENCY}),
    "min_requests": frozenset(
        {RuleKind.ERROR_RATE, RuleKind.LATENCY, RuleKind.ERROR_PATTERN, RuleKind.USAGE_SPIKE}
    ),
    "direction": frozenset({RuleKind.USAGE_SPIKE}),
    "granularity": frozenset({RuleKind.UNKNOWN_IP}),
    "lookback_s": frozenset({RuleKind.UNKNOWN_IP, RuleKind.ERROR_PATTERN}),
    "status_class": frozenset({RuleKind.ERROR_PATTERN}),
    "margin": frozenset({RuleKind.ERROR_PATTERN}),
}
"""The optional rule fields the form shows only for some kinds (the unit tests check this
against what `AlertRule` accepts)."""

COMMON_FIELDS = ("name", "kind", "scope", "window_s", "threshold", "for_s")
CHANNEL_FIELDS = ("emails", "slack_webhook", "slack_channel", "webhook_url")
SECRET_FIELDS = ("slack_token",)
ACCOUNT = "account"
_SPLIT = re.compile(r"[\s,;]+")


def kinds_attr(name: str) -> str:
    """The `data-kinds` value of a kind-specific field (space-separated kinds)."""
    return " ".join(sorted(FIELD_KINDS[name]))


def defaults_words(kind: RuleKind) -> str:
    """What an empty field of this kind means, e.g. "Empty fields take: window 1 h,
    threshold 3.5, at least 50 requests, direction rise."."""
    defaults = KIND_DEFAULTS.get(kind)
    if not defaults:
        return "Window and threshold are required."
    parts = []
    for name, value in defaults.items():
        if name in ("window_s", "lookback_s") and isinstance(value, int):
            label = "window" if name == "window_s" else "look-back"
            parts.append(f"{label} {duration_words(value)}")
        elif name == "min_requests":
            parts.append(f"at least {value} requests")
        elif name != "comparator":
            parts.append(f"{name.replace('_', ' ')} {value}")
    return "Empty fields take: " + ", ".join(parts) + "."


@dataclass(frozen=True)
class KeyChoice:
    key_id: str
    label: str


def key_choices(records: Iterable[KeyRecord], now: datetime) -> list[KeyChoice]:
    """The account's active keys a rule can watch, by name."""
    active = [r for r in records if r.status_at(now) is KeyStatus.ACTIVE]
    active.sort(key=lambda r: (r.name.lower(), r.key_id))
    return [KeyChoice(r.key_id, f"{r.name} ({r.key_id})") for r in active]


def _blank_values() -> dict[str, str]:
    return {"kind": RuleKind.REQUEST_COUNT.value, "scope": ACCOUNT}


@dataclass(frozen=True)
class RuleForm:
    """What the user entered (`values`, without secrets) and the Slack token apart."""

    values: dict[str, str] = field(default_factory=_blank_values)
    enabled: bool = True
    slack_token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> RuleForm:
        names = (*COMMON_FIELDS, *FIELD_KINDS, *CHANNEL_FIELDS)
        values = {n: str(form.get(n) or "").strip() for n in names}
        token = str(form.get("slack_token") or "").strip() or None
        return cls(values, enabled=bool(form.get("enabled")), slack_token=token)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    @property
    def kind(self) -> str:
        return self.get("kind")

    @property
    def scope_key(self) -> str | None:
        """The key the rule watches, None for the whole account."""
        scope = self.get("scope")
        return None if scope in ("", ACCOUNT) else scope

    @property
    def webhook_url(self) -> str | None:
        return self.get("webhook_url") or None

    def rule_data(
        self, account_id: str, rule_id: str, webhook_secret: str | None
    ) -> dict[str, Any]:
        """The rule as data for `build_rule` (None: not given)."""
        given = {n: self.get(n) or None for n in self.values}
        key = self.scope_key
        emails = [e for e in _SPLIT.split(self.get("emails")) if e]
        data: dict[str, Any] = {
            "rule_id": rule_id,
            "account_id": account_id,
            **{n: given.get(n) for n in COMMON_FIELDS},
            "scope": {"type": "key", "key_id": key} if key else {"type": "account"},
            "enabled": self.enabled,
            "channels": channels_from_options(
                emails,
                given.get("slack_webhook"),
                self.slack_token,
                given.get("slack_channel"),
                self.webhook_url,
                webhook_secret if self.webhook_url else None,
            ),
        }
        for name, kinds in FIELD_KINDS.items():
            if self.kind in kinds:
                data[name] = given.get(name)
        return data


KIND_CHOICES = [(kind.value, label) for kind, label in KIND_LABELS.items()]
