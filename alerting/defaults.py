"""The misuse rules a new account starts with (pure).

`default_misuse_rules(account_id, admin_email)` gives one account-wide rule per misuse
detector (`schemas.alerts.MISUSE_KINDS`), each with its kind's defaults
(`KIND_DEFAULTS`), enabled, notifying `admin_email` when one is given (without one the
rules still run and show their state; add a channel later). Each is opt-out: disable it
(`enabled: false`) or delete it like any rule. Rule ids are derived from the account id
(`default_rule_id`), so creating the defaults twice publishes the same rules again
instead of duplicating them.
"""

from __future__ import annotations

import hashlib

from schemas.alerts import MISUSE_KINDS, AlertRule, RuleKind

DEFAULT_NAMES: dict[RuleKind, tuple[str, str]] = {
    RuleKind.USAGE_SPIKE: ("spike", "Usage spike against the key's usual traffic"),
    RuleKind.UNKNOWN_IP: ("newip", "Requests from an IP the key has not used"),
    RuleKind.ERROR_PATTERN: ("errors", "Unusual share of errors"),
    RuleKind.CREDENTIAL_STUFFING: ("stuffing", "One IP presenting many bad keys"),
    RuleKind.STALE_KEY_PRESENTED: ("stale", "Revoked or expired key still presented"),
}
"""Per misuse kind: the short id part and the display name."""
assert set(DEFAULT_NAMES) == MISUSE_KINDS


def default_rule_id(account_id: str, kind: RuleKind) -> str:
    """`misuse-spike-7Hq2x` for `acc_7Hq2x`; a digest of the account id when that would be
    longer than a rule id may be."""
    short = DEFAULT_NAMES[kind][0]
    tail = account_id.removeprefix("acc_")
    rule_id = f"misuse-{short}-{tail}"
    if len(rule_id) > 64:
        rule_id = f"misuse-{short}-{hashlib.sha256(account_id.encode()).hexdigest()[:24]}"
    return rule_id


def default_misuse_rules(account_id: str, admin_email: str | None = None) -> list[AlertRule]:
    """The account's default misuse rules, in a stable order (see the module docstring)."""
    channels = [{"type": "email", "to": [admin_email]}] if admin_email else []
    return [
        AlertRule.model_validate(
            {
                "rule_id": default_rule_id(account_id, kind),
                "account_id": account_id,
                "name": name,
                "scope": {"type": "account"},
                "kind": kind.value,
                "channels": channels,
            }
        )
        for kind, (_, name) in sorted(DEFAULT_NAMES.items(), key=lambda item: item[0].value)
    ]
