"""The notice an account gets when one of its keys was reported leaked and revoked
(a secret-scanning partner such as GitHub found it in public): an ordinary
`Notification` on the notifications topic, so the real notifier signs, sends, retries
and logs it like an alert.

It goes to the channels of the account's enabled alert rules, each once (the same
endpoint on two rules, by `alerting.fingerprint.channel_id`, is one delivery): a leaked
key is something every channel the account set up should hear about, whatever the rule
watches. No enabled rule with a
channel: no notice (the revocation stands and is in the audit log).

What marks it, in every channel: its idempotency key and fingerprint `leak.<key_id>`
(stable, so a second report of the same key, or a retry, is one delivery), the rule it
carries is `leaked-key` named `LEAKED KEY REVOKED`, its evidence says where the key was
found and that it was revoked; its value is None (nothing was measured). The rule kind
is `stale_key_presented`, the kind about keys that no longer work (there is no leak
kind in `schemas.alerts.RuleKind`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from alerting.fingerprint import channel_id
from alerting.render import format_minute, one_line
from schemas.alerts import (
    AlertRule,
    Channel,
    Comparator,
    Notification,
    NotificationKind,
    RuleKind,
    RuleRef,
)

LEAK_PREFIX = "leak."
LEAK_RULE_ID = "leaked-key"
LEAK_RULE_NAME = "LEAKED KEY REVOKED"


def leak_channels(rules: Iterable[AlertRule], account_id: str) -> list[Channel]:
    """The channels of the account's enabled rules, each once, in rule order."""
    seen: set[str] = set()
    out: list[Channel] = []
    for rule in rules:
        if rule.account_id != account_id or not rule.enabled:
            continue
        for channel in rule.channels:
            identity = channel_id(channel)
            if identity not in seen:
                seen.add(identity)
                out.append(channel)
    return out


def build_leak_notice(
    account_id: str,
    key_id: str,
    key_name: str,
    hint: str,
    found_at: str,
    reporter: str,
    channels: list[Channel],
    now: datetime,
) -> Notification | None:
    """The notice that `key_id` (display form `hint`) was found at `found_at` (a URL, or
    "" when the reporter gave none) by `reporter` and revoked at `now`; None when there
    are no `channels` (pure)."""
    if not channels:
        return None
    where = f" at {one_line(found_at, 300)}" if found_at else ""
    evidence = (
        f"Key {key_id} ({hint}…, {one_line(key_name, 100)!r}) was found in public{where} "
        f"by {reporter} and revoked at {format_minute(now)} (reason: compromised). Requests "
        "with it are refused from now on; create a new key, put it where the old one was "
        "used, and remove the old one from where it was published."
    )
    return Notification(
        idempotency_key=f"{LEAK_PREFIX}{key_id}",
        fingerprint=f"{LEAK_PREFIX}{key_id}",
        rule=RuleRef(rule_id=LEAK_RULE_ID, name=LEAK_RULE_NAME, kind=RuleKind.STALE_KEY_PRESENTED),
        account_id=account_id,
        key_id=key_id,
        key_name=key_name,
        state=NotificationKind.FIRING,
        value=None,
        threshold=0,
        comparator=Comparator.GT,
        window_s=0,
        started_at=now,
        episode=1,
        occurred_at=now,
        channels=channels,
        evidence=evidence,
    )
