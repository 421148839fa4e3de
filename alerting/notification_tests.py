"""Test notifications: a rule's channels tried on demand (the console's "Send test
notification"), delivered by the real notifier like any other notification.

A test notification is an ordinary `Notification` (no schema change, so every consumer
of `keypulse.notifications` and the exported JSON Schemas stay as they are), published
on the notifications topic: the notifier signs, sends, retries and logs it in
`deliveries` as it does for a firing. What marks it as a test, in every channel:

- its idempotency key is `test.<rule_id>.<nonce>` (the webhook-id header, the email
  Message-ID and the Slack metadata; a real key is `<fingerprint>.<episode>.<kind>`), and
  its fingerprint `test.<rule_id>` (never an instance's 32 hex characters);
- the rule name it carries starts with `TEST: ` (so every title reads
  `[FIRING] TEST: <rule> on …`) and its evidence says that it is a test and who sent it;
- its value is None (nothing was measured).

It is a `firing` notification (so channels render it as they would a real alert) for
one subject: the rule's key, or `key_testnotification` for an account-wide rule.
"""

from __future__ import annotations

from datetime import datetime

from alerting.render import format_minute, one_line
from schemas.alerts import AlertRule, Notification, NotificationKind, RuleRef

TEST_PREFIX = "test."
TEST_NAME_PREFIX = "TEST: "
ACCOUNT_SUBJECT = "key_testnotification"
"""The subject of a test notification of an account-wide rule (no key is involved)."""


def is_test_notification(idempotency_key: str) -> bool:
    return idempotency_key.startswith(TEST_PREFIX)


def build_test_notification(
    rule: AlertRule, key_name: str | None, sender: str, now: datetime, nonce: str
) -> Notification:
    """The test notification of `rule` sent by `sender` (a key id) at `now` (pure;
    `nonce` makes each one a new delivery, e.g. 12 random hex characters)."""
    key_id = rule.key_id or ACCOUNT_SUBJECT
    name = key_name or ("no key: a test" if rule.key_id is None else rule.key_id)
    evidence = (
        f"Test notification sent from the console by {sender} at {format_minute(now)}: "
        f"rule {one_line(rule.name, 100)!r} has not fired. Nothing needs doing."
    )
    return Notification(
        idempotency_key=f"{TEST_PREFIX}{rule.rule_id}.{nonce}",
        fingerprint=f"{TEST_PREFIX}{rule.rule_id}",
        rule=RuleRef(
            rule_id=rule.rule_id,
            name=TEST_NAME_PREFIX + rule.name,
            kind=rule.kind,
            percentile=rule.percentile,
        ),
        account_id=rule.account_id,
        key_id=key_id,
        key_name=name,
        state=NotificationKind.FIRING,
        value=None,
        threshold=rule.threshold,
        comparator=rule.comparator,
        window_s=rule.window_s,
        started_at=now,
        episode=1,
        occurred_at=now,
        channels=list(rule.channels),
        evidence=evidence,
    )
