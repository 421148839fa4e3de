"""The Alerts page's pure parts: a rule's state from its instances, conditions and
channels in words, the Add Alert form's rule data (and its kind fields against what
`AlertRule` accepts), the deliveries view, the waits after a change, and the test
notification the page sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.channels.webhook import webhook_payload
from alerting.notification_tests import build_test_notification, is_test_notification
from alerting.ports import DeliveryRecord
from infra.alert_admin import AlertAdminError, build_rule, masked_rule
from infra.console.alert_form import FIELD_KINDS, RuleForm, defaults_words, key_choices
from infra.console.alert_reads import RuleReads
from infra.console.alert_words import channel_words, condition_words, duration_words
from infra.console.alerts_view import (
    MAX_POLLS,
    Watch,
    deliveries_view,
    rule_status,
    rules_view,
)
from projections.alert_store import StoredRule
from schemas.alerts import AlertInstance, AlertState, RuleKind
from schemas.codec import decode_notification, encode
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from tests.samples.alerting import SECRET, make_notification, make_rule

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "acc_main"
KEY_SCOPE = {"type": "key", "key_id": "key_abc123"}


def instance(
    state: AlertState, key_id: str = "key_abc123", rule_id: str = "rule_1"
) -> AlertInstance:
    return AlertInstance(
        fingerprint=f"{rule_id}-{key_id}",
        rule_id=rule_id,
        account_id=ACCOUNT,
        key_id=key_id,
        state=state,
    )


# --------------------------------------------------------------------------- rule state


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], ("normal", "no data yet")),
        ([AlertState.FIRING], ("firing", "")),
        ([AlertState.NORMAL, AlertState.RECOVERING], ("firing", "1 of 2 keys firing")),
        (
            [AlertState.PENDING, AlertState.NORMAL, AlertState.NORMAL],
            ("pending", "1 of 3 keys pending"),
        ),
        ([AlertState.ERROR, AlertState.PENDING], ("pending", "1 of 2 keys pending")),
        ([AlertState.ERROR, AlertState.NORMAL], ("error", "1 of 2 keys error")),
        ([AlertState.LEARNING, AlertState.NODATA], ("learning", "1 of 2 keys learning")),
        ([AlertState.LEARNING, AlertState.NORMAL], ("normal", "1 of 2 keys learning")),
        ([AlertState.RESOLVED, AlertState.NORMAL], ("normal", "")),
        ([AlertState.NODATA], ("normal", "no data yet")),
    ],
)
def test_a_rule_state_aggregates_its_instances(
    states: list[AlertState], expected: tuple[str, str]
) -> None:
    found = rule_status([instance(s, f"key_k{i:05d}") for i, s in enumerate(states)])
    assert (found.state, found.note) == expected


def test_ip_instances_are_counted_as_ips() -> None:
    found = rule_status(
        [
            instance(AlertState.FIRING, "ip:203.0.113.9"),
            instance(AlertState.NORMAL, "ip:203.0.113.10"),
        ]
    )
    assert found.note == "1 of 2 IPs firing"


def test_the_rules_view_joins_instances_to_their_rules_and_masks_secrets() -> None:
    webhook = {"type": "webhook", "url": "https://example.com/hook", "secret": SECRET}
    firing = make_rule(rule_id="rule_a", name="B rule", channels=[webhook])
    quiet = make_rule(rule_id="rule_b", name="a rule", scope={"type": "account"})
    reads = RuleReads(
        [StoredRule(firing, 3, NOW), StoredRule(quiet, 4, NOW)],
        [
            instance(AlertState.FIRING, rule_id="rule_a"),
            instance(AlertState.NORMAL, rule_id="rule_b"),
        ],
    )
    view = rules_view(reads, {"key_abc123": "Production web"}, NOW)
    assert [r.name for r in view.rows] == ["a rule", "B rule"]
    quiet_row, firing_row = view.rows
    assert (firing_row.status.state, quiet_row.status.state) == ("firing", "normal")
    assert firing_row.scope == "Production web (key_abc123)"
    assert quiet_row.scope == "Whole account"
    assert firing_row.channels == ["Webhook https://example.com/hook (secret whsec_…LaSw)"]
    assert SECRET not in repr(view)
    assert firing_row.testable and not quiet_row.testable
    assert (view.summary.rules, view.summary.firing, view.summary.pending) == (2, 1, 0)


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {"kind": "error_rate", "threshold": 5, "window_s": "5m", "min_requests": 50},
            "error rate > 5% over 5 min, at least 50 requests",
        ),
        (
            {"kind": "request_count", "threshold": 1000, "window_s": "1h"},
            "requests > 1,000 requests over 1 h",
        ),
        (
            {
                "kind": "latency",
                "percentile": "p99",
                "threshold": 500,
                "window_s": "5m",
                "for_s": "2m",
            },
            "p99 latency > 500 ms over 5 min, for 2 min",
        ),
        (
            {"kind": "stale_key_presented"},
            "a revoked or expired key presented ≥ 1 time over 15 min",
        ),
        (
            {"kind": "usage_spike", "scope": {"type": "account"}},
            "requests rise against the usual: ≥ z 3.5 over 1 h, at least 50 requests",
        ),
        (
            {"kind": "unknown_ip", "granularity": "prefix", "lookback_s": "7d"},
            "networks (/24, /48) not used in the previous 7 d: ≥ 1 new address over 1 h",
        ),
        (
            {"kind": "error_pattern", "status_class": "401"},
            "401 responses share ≥ 5% over 15 min, and 10 points above the key's usual "
            "share (previous 7 d), at least 20 requests",
        ),
        (
            {"kind": "credential_stuffing", "scope": {"type": "account"}},
            "one IP presents ≥ 10 distinct bad keys over 15 min",
        ),
    ],
)
def test_conditions_read_as_words(fields: dict[str, Any], words: str) -> None:
    base = {"rule_id": "rule_1", "account_id": ACCOUNT, "name": "x", "scope": KEY_SCOPE}
    assert condition_words(build_rule(base | fields)) == words


def test_durations_in_words() -> None:
    assert [duration_words(s) for s in (90, 300, 3_600, 5_400, 14 * 86_400)] == [
        "90 s",
        "5 min",
        "1 h",
        "90 min",
        "14 d",
    ]


def test_channels_in_words_never_show_what_was_not_masked() -> None:
    slack_hook = {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T1/B2/xyz"}
    bot = {"type": "slack", "bot_token": "xoxb-123-secret", "channel": "#alerts"}
    rule = make_rule(
        channels=[slack_hook, bot, {"type": "email", "to": ["a@example.com", "b@example.com"]}]
    )
    words = [channel_words(c) for c in masked_rule(rule)["channels"]]
    assert words == [
        "Slack incoming webhook on hooks.slack.com",
        "Slack #alerts (token xoxb-…)",
        "Email: a@example.com, b@example.com",
    ]
    raw = {"type": "webhook", "url": "https://example.com/h", "secret": SECRET}
    assert channel_words(raw, secrets=False) == "Webhook https://example.com/h"


# --------------------------------------------------------------------------- the form


def form_rule(values: dict[str, str], secret: str | None = None) -> Any:
    form = RuleForm.parse(values)
    return build_rule(form.rule_data(ACCOUNT, "rule_new", secret))


def test_the_form_gives_a_rule_with_its_kind_fields_only_and_its_channels() -> None:
    rule = form_rule(
        {
            "name": " Exporter errors ",
            "kind": "error_rate",
            "scope": "key_abc123",
            "window_s": "5m",
            "threshold": "5",
            "min_requests": "50",
            "percentile": "p99",  # left in a hidden latency field: ignored
            "margin": "3",
            "emails": "oncall@example.com, Ops@Example.com",
            "webhook_url": "https://example.com/hook",
            "enabled": "on",
        },
        SECRET,
    )
    assert (rule.kind, rule.key_id, rule.window_s, rule.threshold) == (
        RuleKind.ERROR_RATE,
        "key_abc123",
        300,
        5,
    )
    assert rule.percentile is None and rule.margin is None
    assert rule.name == "Exporter errors" and rule.enabled
    email, webhook = rule.channels
    assert email.model_dump()["to"] == ["oncall@example.com", "Ops@example.com"]
    assert webhook.model_dump() == {
        "type": "webhook",
        "url": "https://example.com/hook",
        "secret": SECRET,
    }


def test_empty_fields_take_the_kind_defaults_and_an_unchecked_box_disables() -> None:
    rule = form_rule(
        {
            "name": "Spikes",
            "kind": "usage_spike",
            "scope": "account",
            "window_s": "",
            "threshold": "",
        }
    )
    assert (rule.window_s, rule.threshold, rule.min_requests, rule.key_id) == (3_600, 3.5, 50, None)
    assert not rule.enabled and rule.channels == []
    assert defaults_words(RuleKind.USAGE_SPIKE) == (
        "Empty fields take: threshold 3.5, window 1 h, at least 50 requests, direction rise."
    )
    assert defaults_words(RuleKind.LATENCY) == "Window and threshold are required."


def test_form_errors_are_one_line_naming_the_field() -> None:
    with pytest.raises(
        AlertAdminError, match=r"threshold: error_rate thresholds are percentages 0\.\.100"
    ):
        form_rule({"name": "x", "kind": "error_rate", "window_s": "5m", "threshold": "150"})
    with pytest.raises(AlertAdminError, match="threshold"):
        form_rule({"name": "x", "kind": "request_count", "window_s": "5m", "threshold": ""})


def test_a_reshown_form_keeps_the_values_but_never_the_slack_token() -> None:
    form = RuleForm.parse({"name": "x", "slack_token": "xoxb-123-secret", "slack_channel": "#a"})
    assert form.slack_token == "xoxb-123-secret"
    assert "xoxb-123-secret" not in form.values.values() and "xoxb" not in repr(form)


@pytest.mark.parametrize("kind", list(RuleKind))
@pytest.mark.parametrize("name", sorted(FIELD_KINDS))
def test_the_form_shows_a_kind_field_exactly_for_the_kinds_that_take_it(
    kind: RuleKind, name: str
) -> None:
    value = {
        "percentile": "p95",
        "min_requests": 10,
        "direction": "drop",
        "granularity": "prefix",
        "lookback_s": "2d",
        "status_class": "5xx",
        "margin": 5,
    }[name]
    scope = (
        {"type": "account"}
        if kind is RuleKind.CREDENTIAL_STUFFING
        else {"type": "key", "key_id": "key_abc123"}
    )
    base: dict[str, Any] = {
        "rule_id": "rule_x",
        "account_id": ACCOUNT,
        "name": "x",
        "scope": scope,
        "kind": kind.value,
        "window_s": "1h",
        "threshold": 2 if kind is not RuleKind.LATENCY else 100,
        "percentile": "p95" if kind is RuleKind.LATENCY else None,
    }
    try:
        build_rule(base | {name: value})
        accepted = True
    except AlertAdminError:
        accepted = False
    assert accepted == (kind in FIELD_KINDS[name])


def test_key_choices_are_the_active_keys_by_name() -> None:
    def record(
        key_id: str, name: str, status: KeyStatus, expires: datetime | None = None
    ) -> KeyRecord:
        return KeyRecord(
            account_id=ACCOUNT,
            key_id=key_id,
            name=name,
            key_type=KeyType.LIVE,
            access=KeyAccess.FULL,
            status=status,
            secret_hash="h",
            hint="pk_live_abcd",
            created_at=NOW,
            created_by="test",
            updated_at=NOW,
            seq=1,
            expires_at=expires,
        )

    records = [
        record("key_b00001", "web", KeyStatus.ACTIVE),
        record("key_a00001", "Batch", KeyStatus.ACTIVE),
        record("key_c00001", "old", KeyStatus.REVOKED),
        record("key_d00001", "gone", KeyStatus.ACTIVE, NOW - timedelta(seconds=1)),
    ]
    assert [(c.key_id, c.label) for c in key_choices(records, NOW)] == [
        ("key_a00001", "Batch (key_a00001)"),
        ("key_b00001", "web (key_b00001)"),
    ]


# --------------------------------------------------------------------------- deliveries


def delivery(n: Any, status: str, attempt: int = 1, did: str = "dlv_1") -> DeliveryRecord:
    return DeliveryRecord(did, n, 0, "webhook_x", attempt, NOW, status, detail="HTTP 400: no")


def test_deliveries_show_test_notifications_and_which_can_be_replayed() -> None:
    rule = make_rule(
        name="Traffic",
        channels=[{"type": "webhook", "url": "https://example.com/h", "secret": SECRET}],
    )
    test = build_test_notification(rule, "Production web", "key_admin1", NOW, "abc123")
    real = make_notification().model_copy(update={"channels": rule.channels})
    view = deliveries_view(
        [
            delivery(test, "delivered", did="dlv_t"),
            delivery(real, "dead"),
            delivery(real, "disabled", did="dlv_2"),
        ],
        {},
        NOW,
    )
    first, dead, _ = view.rows
    assert (first.kind, first.rule, first.subject) == ("test", "Traffic", "")
    assert (dead.kind, dead.rule, dead.subject) == ("firing", "Error spike", "key_abc123")
    assert dead.channel == "Webhook https://example.com/h"
    assert [r.replayable for r in view.rows] == [False, True, True]
    assert view.counts == {"delivered": 1, "dead": 1, "disabled": 1}


# --------------------------------------------------------------------------- waiting


def test_a_watch_polls_until_its_change_shows_or_its_polls_run_out() -> None:
    watch = Watch.of({"rule": "rule_new", "left": "999"})
    assert watch.left == MAX_POLLS
    assert watch.rules_waiting({"rule_old"}) and not watch.rules_waiting({"rule_new"})
    assert Watch.of({"gone": "rule_old", "left": "3"}).rules_waiting({"rule_old"})
    assert not Watch.of({"gone": "rule_old", "left": "0"}).rules_waiting({"rule_old"})
    assert Watch.of(dict(pair.split("=") for pair in watch.next().query().split("&"))) == Watch(
        rule="rule_new", left=MAX_POLLS - 1
    )
    assert not Watch(rule="rule_new").rules_waiting(set())  # no polls left: done waiting


def test_a_watch_waits_for_a_test_notifications_deliveries_and_a_replays_new_attempt() -> None:
    n = make_notification()
    key = n.idempotency_key
    notice = Watch(notice=key).starting()
    assert notice.deliveries_waiting([])
    assert notice.deliveries_waiting(
        [delivery(n, "pending"), delivery(n, "delivered", did="dlv_2")]
    )
    assert not notice.deliveries_waiting(
        [delivery(n, "dead"), delivery(n, "delivered", did="dlv_2")]
    )
    replay = Watch(replay="dlv_1", after=3).starting()
    assert replay.deliveries_waiting([delivery(n, "dead", attempt=3)])
    assert replay.deliveries_waiting([delivery(n, "pending", attempt=3)])
    assert replay.deliveries_waiting([delivery(n, "retrying", attempt=4)])
    assert not replay.deliveries_waiting([delivery(n, "dead", attempt=4)])
    assert "after=3" in replay.query() and "after" not in notice.query()


# --------------------------------------------------------------------------- test notifications


def test_a_test_notification_is_an_ordinary_notification_marked_as_a_test() -> None:
    rule = make_rule(
        rule_id="rule_9",
        name="Traffic",
        channels=[{"type": "webhook", "url": "https://example.com/h", "secret": SECRET}],
    )
    n = build_test_notification(rule, "Production web", "key_admin1", NOW, "0123456789ab")
    assert n.idempotency_key == "test.rule_9.0123456789ab" and is_test_notification(
        n.idempotency_key
    )
    assert not is_test_notification(make_notification().idempotency_key)
    assert (n.fingerprint, n.key_id, n.key_name, n.value) == (
        "test.rule_9",
        "key_abc123",
        "Production web",
        None,
    )
    assert n.rule.name == "TEST: Traffic" and n.channels == rule.channels
    assert "key_admin1" in n.evidence and "2026-12-01 12:00 UTC" in n.evidence
    assert decode_notification(encode(n)) == n  # what the notifier reads
    assert webhook_payload(n)["data"]["rule"]["name"] == "TEST: Traffic"
    account_wide = make_rule(scope={"type": "account"})
    other = build_test_notification(account_wide, None, "key_admin1", NOW, "ff")
    assert other.key_id == "key_testnotification"
