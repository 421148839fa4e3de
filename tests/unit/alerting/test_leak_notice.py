"""The leaked-key notice: to the channels of the account's enabled rules, each endpoint
once; none without channels; stable ids so a second report is one delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from alerting.leak_notice import build_leak_notices, leak_channels
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
        rule("r5", "acc_alpha", [same_url_other_secret, EmailChannel(to=["sec@example.com"])]),
    ]
    picked = [(r.rule_id, chans) for r, chans in leak_channels(rules, "acc_alpha")]
    assert picked == [("r1", [HOOK, mail]), ("r5", [EmailChannel(to=["sec@example.com"])])]


def test_one_notice_per_rule_with_its_id_saying_what_happened() -> None:
    rules = [
        rule("r1", "acc_alpha", [HOOK]),
        rule("r2", "acc_alpha", [EmailChannel(to=["a@b.co"])]),
    ]
    args = ("key_abc123", "Prod app", "pk_live_Ab3x", "https://github.com/o/r/blob/x", "GitHub")
    notices = build_leak_notices(*args, rules, "acc_alpha", NOW)
    assert [(n.rule.rule_id, n.idempotency_key) for n in notices] == [
        ("r1", "leak.key_abc123.r1"),
        ("r2", "leak.key_abc123.r2"),
    ]
    for notice in notices:
        assert notice.fingerprint == "leak.key_abc123" and notice.value is None
        assert (notice.account_id, notice.key_id) == ("acc_alpha", "key_abc123")
        for part in ("pk_live_Ab3x", "https://github.com/o/r/blob/x", "revoked", "compromised"):
            assert part in notice.evidence
    assert build_leak_notices(*args, rules, "acc_alpha", NOW) == notices  # stable


def test_no_channels_no_notice() -> None:
    args = ("key_abc123", "Prod app", "pk_live_Ab3x", "", "GitHub")
    assert build_leak_notices(*args, [rule("r1", "acc_alpha", [])], "acc_alpha", NOW) == []
