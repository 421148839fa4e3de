"""`infra.http.routes.rules`: the rule answer shows every field of `AlertRule`, masked."""

from __future__ import annotations

from infra import alert_admin
from infra.http.routes.rules import RuleOut
from schemas.alerts import AlertRule


def test_rule_out_has_exactly_the_fields_of_alert_rule() -> None:
    assert list(RuleOut.model_fields) == list(AlertRule.model_fields)


def test_rule_out_masks_secrets_and_keeps_the_rest() -> None:
    rule = alert_admin.build_rule(
        {
            "rule_id": "rule_1",
            "account_id": "acc_main",
            "name": "Errors",
            "scope": {"type": "account"},
            "kind": "error_rate",
            "window_s": "5m",
            "threshold": 5,
            "channels": [
                {"type": "webhook", "url": "https://hooks.example.com/x",
                 "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                {"type": "slack", "bot_token": "xoxb-1234-abcd", "channel": "#ops"},
                {"type": "email", "to": ["ops@example.com"]},
                {"type": "slack",
                 "webhook_url": "https://hooks.slack.com/services/T0/B0/XyZsecretpart"},
            ],
        }
    )  # fmt: skip
    out = RuleOut.of(rule).model_dump(mode="json")
    webhook, slack, email, hook = out.pop("channels")
    assert (webhook["secret"], slack["bot_token"]) == ("whsec_…LaSw", "xoxb-…")
    assert hook["webhook_url"] == "https://hooks.slack.com/…"  # only the host
    assert webhook["url"] == "https://hooks.example.com/x" and slack["channel"] == "#ops"
    assert email == {"type": "email", "to": ["ops@example.com"]}
    expected = rule.model_dump(mode="json")
    expected.pop("channels")
    unset = {"direction", "granularity", "lookback_s", "status_class", "margin"}
    assert out == {name: None for name in unset} | expected  # shown as null in the API
