"""Rule, channel and event schemas: normalisation, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.alerts import (
    AccountScope,
    AlertRule,
    AlertRuleCreated,
    AlertRuleDeleted,
    AlertRuleEvent,
    AlertRuleUpdated,
    Comparator,
    EmailChannel,
    Notification,
    SlackChannel,
    UrlError,
    WebhookChannel,
    parse_duration,
    parse_http_url,
)
from tests.samples.alerting import SECRET
from tests.samples.alerting import rule_data as sample_rule_data

CHANNELS = [
    {"type": "email", "to": ["Ops@Example.COM"]},
    {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
    {"type": "slack", "bot_token": "xoxb-123-abc", "channel": "#alerts"},
    {"type": "webhook", "url": "https://hooks.example.com/k", "secret": SECRET},
]


def rule_data(**overrides: Any) -> dict[str, Any]:
    """The sample rule over 5 minutes, with one channel of each kind."""
    return sample_rule_data(window_s="5m", channels=CHANNELS) | overrides


def error_locs(data: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as info:
        AlertRule.model_validate(data)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_valid_rule_normalises_durations_and_addresses() -> None:
    rule = AlertRule.model_validate(
        rule_data(for_s="2m", keep_firing_for_s="1h", repeat_interval_s="1d", window_s="7d")
    )
    assert (rule.window_s, rule.for_s, rule.keep_firing_for_s) == (7 * 86_400, 120, 3_600)
    assert rule.repeat_interval_s == 86_400
    assert rule.comparator is Comparator.GT
    assert rule.key_id == "key_abc123"
    assert isinstance(rule.channels[0], EmailChannel)
    assert rule.channels[0].to == ["Ops@example.com"]
    assert isinstance(rule.channels[1], SlackChannel)
    assert isinstance(rule.channels[3], WebhookChannel)
    assert len(rule.channels[3].secret_bytes) == 24


def test_account_scope_and_latency_rule() -> None:
    rule = AlertRule.model_validate(
        rule_data(scope={"type": "account"}, kind="latency", percentile="p99", threshold=500)
    )
    assert isinstance(rule.scope, AccountScope)
    assert rule.key_id is None
    assert rule.effective_min_requests == 1


def test_rule_is_frozen_and_forbids_extra_fields() -> None:
    rule = AlertRule.model_validate(rule_data())
    with pytest.raises(ValidationError):
        rule.threshold = 5  # type: ignore[misc]
    assert error_locs(rule_data(colour="red")) == [("colour",)]


def test_secrets_stay_out_of_repr() -> None:
    rule = AlertRule.model_validate(rule_data())
    assert "xoxb" not in repr(rule)
    assert "whsec" not in repr(rule)
    assert "hooks.slack.com" not in repr(rule)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"kind": "latency"}, ("percentile",)),
        ({"percentile": "p95"}, ("percentile",)),
        ({"kind": "latency", "percentile": "p42"}, ("percentile",)),
        ({"kind": "spike"}, ("kind",)),
        ({"window_s": "30s"}, ("window_s",)),
        ({"window_s": "31d"}, ("window_s",)),
        ({"window_s": 90}, ("window_s",)),
        ({"window_s": "0m"}, ("window_s",)),
        ({"window_s": 86_400 + 60}, ("window_s",)),
        ({"window_s": "five minutes"}, ("window_s",)),
        ({"comparator": "eq"}, ("comparator",)),
        ({"threshold": -1}, ("threshold",)),
        ({"threshold": float("nan")}, ("threshold",)),
        ({"kind": "error_rate", "threshold": 150}, ("threshold",)),
        ({"min_requests": 10}, ("min_requests",)),
        ({"kind": "error_rate", "min_requests": 0}, ("min_requests",)),
        ({"for_s": "1x"}, ("for_s",)),
        ({"for_s": -5}, ("for_s",)),
        ({"keep_firing_for_s": "40d"}, ("keep_firing_for_s",)),
        ({"repeat_interval_s": 30}, ("repeat_interval_s",)),
        ({"name": ""}, ("name",)),
        ({"name": "bad\nname"}, ("name",)),
        ({"rule_id": "has space"}, ("rule_id",)),
        ({"scope": {"type": "key", "key_id": "abc"}}, ("scope", "key", "key_id")),
        ({"scope": {"type": "team"}}, ("scope",)),
        ({"channels": [{"type": "pager"}]}, ("channels", 0)),
        ({"channels": [{"type": "email", "to": []}]}, ("channels", 0, "email", "to")),
        ({"channels": [{"type": "email", "to": ["nope"]}]}, ("channels", 0, "email", "to")),
        (
            {"channels": [{"type": "email", "to": ["a@b.com\r\nBcc: x@y.com"]}]},
            ("channels", 0, "email", "to"),
        ),
        ({"channels": [{"type": "slack"}]}, ("channels", 0, "slack", "bot_token")),
        (
            {"channels": [{"type": "slack", "bot_token": "xoxb-1-2"}]},
            ("channels", 0, "slack", "channel"),
        ),
        (
            {"channels": [{"type": "slack", "webhook_url": "https://h/x", "channel": "#a"}]},
            ("channels", 0, "slack", "channel"),
        ),
        (
            {"channels": [{"type": "slack", "bot_token": "token", "channel": "#a"}]},
            ("channels", 0, "slack", "bot_token"),
        ),
        (
            {"channels": [{"type": "webhook", "url": "ftp://x.example/", "secret": SECRET}]},
            ("channels", 0, "webhook", "url"),
        ),
        (
            {"channels": [{"type": "webhook", "url": "https://u:p@x.example/", "secret": SECRET}]},
            ("channels", 0, "webhook", "url"),
        ),
        (
            {"channels": [{"type": "webhook", "url": "https://x.example/", "secret": "hunter2"}]},
            ("channels", 0, "webhook", "secret"),
        ),
        (
            {"channels": [{"type": "webhook", "url": "https://x.example/", "secret": "whsec_!!"}]},
            ("channels", 0, "webhook", "secret"),
        ),
        (
            {
                "channels": [
                    {"type": "webhook", "url": "https://x.example/", "secret": "whsec_YWJj"}
                ]
            },
            ("channels", 0, "webhook", "secret"),
        ),
    ],
)
def test_validation_errors_name_the_field(
    overrides: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    locs = error_locs(rule_data(**overrides))
    assert loc in locs, locs
    with pytest.raises(ValidationError, match=str(loc[-1])):
        AlertRule.model_validate(rule_data(**overrides))


def test_missing_required_fields_are_named() -> None:
    data = rule_data()
    del data["threshold"], data["kind"]
    assert set(error_locs(data)) == {("threshold",), ("kind",)}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3_600), ("7d", 604_800), (" 2 m ", 120), ("600", 600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(45) == 45


def test_rule_events_round_trip_through_json() -> None:
    rule = AlertRule.model_validate(rule_data())
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    adapter: TypeAdapter[Any] = TypeAdapter(AlertRuleEvent)
    events = [
        AlertRuleCreated(occurred_at=at, rule=rule),
        AlertRuleUpdated(occurred_at=at, rule=rule.model_copy(update={"threshold": 5})),
        AlertRuleDeleted(occurred_at=at, rule_id="rule_1", account_id="acc_main"),
    ]
    for event in events:
        assert event.schema_version == 1
        decoded = adapter.validate_json(event.model_dump_json())
        assert decoded == event
        assert type(decoded) is type(event)


def test_events_require_aware_timestamps() -> None:
    with pytest.raises(ValidationError, match="occurred_at"):
        AlertRuleDeleted(occurred_at=datetime(2025, 1, 1), rule_id="r", account_id="acc_main")


def test_notification_idempotency_key_charset() -> None:
    with pytest.raises(ValidationError, match="idempotency_key"):
        Notification.model_validate(
            {
                "idempotency_key": "has:colon",
                "fingerprint": "f",
                "rule": {"rule_id": "r", "name": "n", "kind": "request_count"},
                "account_id": "a",
                "key_id": "key_a",
                "key_name": "k",
                "state": "firing",
                "value": 1,
                "threshold": 0,
                "comparator": "gt",
                "window_s": 60,
                "started_at": datetime(2025, 1, 1, tzinfo=UTC),
                "episode": 1,
                "occurred_at": datetime(2025, 1, 1, tzinfo=UTC),
                "channels": [],
            }
        )


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://Hooks.Example.com/k?x=1", ("https", "hooks.example.com", 443, "/k?x=1")),
        ("HTTP://hooks.example.com", ("http", "hooks.example.com", 80, "/")),
        ("http://[2606:4700::1]:8080/a", ("http", "2606:4700::1", 8080, "/a")),
        (" http://10.0.0.1:81/ ", ("http", "10.0.0.1", 81, "/")),
    ],
)
def test_parse_http_url_splits_for_connecting(url: str, parts: tuple[str, str, int, str]) -> None:
    parsed = parse_http_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == parts
    assert parsed.url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://x.example/", "scheme"),
        ("x.example/path", "scheme"),
        ("https://u:p@x.example/", "credentials"),
        ("https://@x.example/", "credentials"),
        ("http:///path", "malformed"),
        ("http://x.example:99999/", "malformed"),
        ("http://x.example:port/", "malformed"),
        ("http://a\\b.example/", "malformed"),
    ],
)
def test_parse_http_url_names_the_problem(url: str, reason: str) -> None:
    with pytest.raises(UrlError) as info:
        parse_http_url(url)
    assert info.value.reason == reason
    assert error_locs(rule_data(channels=[{"type": "webhook", "url": url, "secret": SECRET}])) == [
        ("channels", 0, "webhook", "url")
    ]
