"""The notice an account gets when one of its keys was reported leaked and revoked
(a secret-scanning partner such as GitHub found it in public): an ordinary
`Notification` on the notifications topic, so the real notifier signs, sends, retries
and logs it like an alert.

It goes to the channels of the account's enabled alert rules, each once (the same
endpoint on two rules, by `alerting.fingerprint.channel_id`, is one delivery): a leaked
key is something every channel the account set up should hear about, whatever the rule
watches. No enabled rule with a
channel: no notice (the revocation stands and is in the audit log).

Channel secrets are sealed for their rule (`alerting.channel_secrets`), so there is one
notice per rule that brings channels, carrying that rule's id. What marks it, in every
channel: its fingerprint `leak.<key_id>` and idempotency key `leak.<key_id>.<rule_id>`
(stable, so a retry is one delivery), the rule name it carries is `LEAKED KEY REVOKED`,
its evidence says where the key was found and that it was revoked; its value is None
(nothing was measured). The kind is `stale_key_presented`, the kind about keys that no
longer work (`schemas.alerts.RuleKind` has no leak kind).
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
LEAK_RULE_NAME = "LEAKED KEY REVOKED"


def leak_channels(
    rules: Iterable[AlertRule], account_id: str
) -> list[tuple[AlertRule, list[Channel]]]:
    """Each enabled rule of the account with its channels not already on an earlier
    rule (rules left with none are left out), in rule order."""
    seen: set[str] = set()
    out: list[tuple[AlertRule, list[Channel]]] = []
    for rule in rules:
        if rule.account_id != account_id or not rule.enabled:
            continue
        fresh = [c for c in rule.channels if channel_id(c) not in seen]
        seen.update(channel_id(c) for c in fresh)
        if fresh:
            out.append((rule, fresh))
    return out


def build_leak_notices(
    key_id: str,
    key_name: str,
    hint: str,
    found_at: str,
    reporter: str,
    rules: Iterable[AlertRule],
    account_id: str,
    now: datetime,
) -> list[Notification]:
    """The notices that `key_id` of `account_id` (display form `hint`) was found at
    `found_at` (a URL, or "" when the reporter gave none) by `reporter` and revoked at
    `now`: one per rule that brings channels (`leak_channels`), carrying that rule's id
    because its channels' secrets are sealed for it (pure)."""
    where = f" at {one_line(found_at, 300)}" if found_at else ""
    evidence = (
        f"Key {key_id} ({hint}…, {one_line(key_name, 100)!r}) was found in public{where} "
        f"by {reporter} and revoked at {format_minute(now)} (reason: compromised). Requests "
        "with it are refused from now on; create a new key, put it where the old one was "
        "used, and remove the old one from where it was published."
    )
    return [
        Notification(
            idempotency_key=f"{LEAK_PREFIX}{key_id}.{rule.rule_id}",
            fingerprint=f"{LEAK_PREFIX}{key_id}",
            rule=RuleRef(
                rule_id=rule.rule_id, name=LEAK_RULE_NAME, kind=RuleKind.STALE_KEY_PRESENTED
            ),
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
        for rule, channels in leak_channels(rules, account_id)
    ]
