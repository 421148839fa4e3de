"""Turn a `NotifyDecision` into the `Notification` published on keypulse.notifications."""

from __future__ import annotations

from alerting.state import NotifyDecision
from schemas.alerts import AlertRule, Notification, RuleRef


def build_notification(decision: NotifyDecision, rule: AlertRule, key_name: str) -> Notification:
    """Combine a decision with the rule and the key's display name (pure)."""
    if decision.rule_id != rule.rule_id:
        raise ValueError(f"decision for rule {decision.rule_id!r} given rule {rule.rule_id!r}")
    return Notification(
        idempotency_key=decision.idempotency_key,
        fingerprint=decision.fingerprint,
        rule=RuleRef(
            rule_id=rule.rule_id, name=rule.name, kind=rule.kind, percentile=rule.percentile
        ),
        account_id=decision.account_id,
        key_id=decision.key_id,
        key_name=key_name,
        state=decision.kind,
        value=decision.value,
        threshold=rule.threshold,
        comparator=rule.comparator,
        window_s=rule.window_s,
        started_at=decision.started_at,
        ended_at=decision.ended_at,
        episode=decision.episode,
        repeat_n=decision.repeat_n,
        occurred_at=decision.at,
        channels=list(rule.channels),
        evidence=decision.evidence,
    )
