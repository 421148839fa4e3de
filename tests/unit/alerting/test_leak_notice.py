"""The leaked-key notice: to the channels of the account's enabled rules, each endpoint
once; none without channels; stable ids so a second report is one delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from alerting.leak_notice import build_leak_notice, leak_channels
from schemas.alerts import AlertRule, EmailChannel, WebhookChannel

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOOK = WebhookChannel(url="https://hooks.example.com/a", secret="whsec_" + "A" * 32)


def rule(rule_id: str, account: str, channels: list[object], enabled: bool = True) -> AlertRule:
    return AlertRule.model_validate(
        {
            "rule_id": rule_id,
            "account_id": account,
            "name": f"rule {rule_id}",
            "scope": {"type": "account"},
            "kind": "request_count",
            "window_s": 3600,
            "threshold": 10,
            "enabled": enabled,
            "channels": channels,
        }
    )


def test_channels_of_enabled_rules_of_the_account_each_endpoint_once() -> None:
    mail = EmailChannel(to=["ops@example.com"])
    same_url_other_secret = WebhookChannel(url=HOOK.url, secret="whsec_" + "B" * 32)
    rules = [
        rule("r1", "acc_alpha", [HOOK, mail]),
        rule("r2", "acc_alpha", [same_url_other_secret]),
        rule("r3", "acc_alpha", [EmailChannel(to=["off@example.com"])], enabled=False),
        rule("r4", "acc_beta", [EmailChannel(to=["beta@example.com"])]),
    ]
    assert leak_channels(rules, "acc_alpha") == [HOOK, mail]


def test_the_notice_says_what_happened_and_is_stable() -> None:
    args = ("acc_alpha", "key_abc123", "Prod app", "pk_live_Ab3x", "https://github.com/o/r/blob/x")
    notice = build_leak_notice(*args, "GitHub secret scanning", [HOOK], NOW)
    assert notice is not None
    assert notice.idempotency_key == notice.fingerprint == "leak.key_abc123"
    assert notice.account_id == "acc_alpha" and notice.key_id == "key_abc123"
    assert notice.channels == [HOOK] and notice.value is None
    for part in ("pk_live_Ab3x", "https://github.com/o/r/blob/x", "revoked", "compromised"):
        assert part in notice.evidence
    again = build_leak_notice(*args, "GitHub secret scanning", [HOOK], NOW)
    assert again is not None and again.idempotency_key == notice.idempotency_key


def test_no_channels_no_notice() -> None:
    args = ("acc_alpha", "key_abc123", "Prod app", "pk_live_Ab3x", "")
    assert build_leak_notice(*args, "GitHub", [], NOW) is None
