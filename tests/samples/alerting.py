"""Sample alerting values shared by the tests: rules, notifications, a webhook secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerting.fingerprint import fingerprint, idempotency_key
from schemas.alerts import AlertRule, Notification, NotificationKind

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""A valid Standard Webhooks secret (24 bytes)."""

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def rule_data(**overrides: Any) -> dict[str, Any]:
    """A valid rule as JSON-like data: a request-count rule on key_abc123 of acc_main."""
    data: dict[str, Any] = {
        "rule_id": "rule_1",
        "account_id": "acc_main",
        "name": "Too many requests",
        "scope": {"type": "key", "key_id": "key_abc123"},
        "kind": "request_count",
        "window_s": "1m",
        "threshold": 100,
    }
    return data | overrides


def make_rule(**overrides: Any) -> AlertRule:
    """`rule_data(**overrides)`, validated."""
    return AlertRule.model_validate(rule_data(**overrides))


def make_notification(
    state: NotificationKind = NotificationKind.FIRING,
    *,
    episode: int = 1,
    repeat_n: int = 0,
    key_name: str = "Production server",
) -> Notification:
    """An error-rate notification of rule_1 for key_abc123, without channels."""
    fp = fingerprint("rule_1", "key_abc123")
    return Notification(
        idempotency_key=idempotency_key(fp, episode, state, repeat_n),
        fingerprint=fp,
        rule={"rule_id": "rule_1", "name": "Error spike", "kind": "error_rate"},
        account_id="acc_main",
        key_id="key_abc123",
        key_name=key_name,
        state=state,
        value=12.5,
        threshold=5.0,
        comparator="gt",
        window_s=300,
        started_at=T0,
        ended_at=T0.replace(minute=7) if state is NotificationKind.RESOLVED else None,
        episode=episode,
        repeat_n=repeat_n,
        occurred_at=datetime.now(UTC),
        channels=[],
    )
