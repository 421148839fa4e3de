"""`stale_key_presented`, pure: the rule's defaults and validation, the observation and its
evidence at `now` (table-driven), a cycle that fires and resolves, and the evidence in
the email, Slack and webhook bodies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.channels.email import EmailConfig, build_message
from alerting.channels.slack import fallback_text, slack_blocks
from alerting.channels.webhook import webhook_payload
from alerting.detectors.stale_keys import observe_stale
from alerting.evaluation import evaluate
from alerting.fingerprint import fingerprint
from alerting.planning import QueryAnswer, plan_queries
from alerting.ports import QueryOptions, StalePresentations, WindowStats
from alerting.render import summary_lines
from alerting.state import Condition, Observation, classify
from schemas.alerts import (
    AlertRule,
    AlertState,
    Comparator,
    EmailChannel,
    NotificationKind,
    RuleKind,
)

NOW = datetime(2026, 12, 1, 12, 5, 30, tzinfo=UTC)
KIND = RuleKind.STALE_KEY_PRESENTED
REVOKED = StalePresentations(
    revoked=37,
    expired=0,
    last_at=datetime(2026, 12, 1, 12, 3, 10, tzinfo=UTC),
    last_ip="198.51.100.7",
    name="Production web",
    revoked_at=datetime(2026, 11, 30, 14, 2, 59, tzinfo=UTC),
    revoke_reason="compromised",
)
EXPIRED = StalePresentations(
    revoked=0,
    expired=1,
    last_at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC),
    last_ip="",
    name="Batch",
    expires_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    replaced_by="key_cd34ef",
)


def stale_rule(**fields: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": "stale",
        "account_id": "acc_main",
        "name": "Revoked keys in use",
        "scope": {"type": "account"},
        "kind": "stale_key_presented",
        "channels": [{"type": "email", "to": ["ops@example.com"]}],
    }
    return AlertRule.model_validate(data | fields)


# --------------------------------------------------------------------------- the rule


def test_defaults_fire_on_the_first_presentation_within_15_minutes() -> None:
    rule = stale_rule()
    assert (rule.threshold, rule.window_s, rule.comparator) == (1.0, 900, Comparator.GTE)
    assert rule.effective_min_requests == 0
    given = stale_rule(threshold=5, window_s="1h", scope={"type": "key", "key_id": "key_ab12cd"})
    assert (given.threshold, given.window_s, given.key_id) == (5.0, 3600, "key_ab12cd")
    # PATCH sends the stored rule back with null-free fields: it validates the same.
    assert AlertRule.model_validate(given.model_dump(mode="json")) == given


@pytest.mark.parametrize(
    ("fields", "where", "words"),
    [
        ({"threshold": 0}, "threshold", "whole number ≥ 1"),
        ({"threshold": 2.5}, "threshold", "whole number ≥ 1"),
        ({"comparator": "gt"}, "comparator", "use gte"),
        ({"min_requests": 10}, "min_requests", "only error_rate, latency"),
        ({"percentile": "p99"}, "percentile", "only latency rules"),
        ({"window_s": "30s"}, "window_s", "between 1m and 30d"),
    ],
)
def test_bad_fields_are_named_with_what_to_do(
    fields: dict[str, Any], where: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        stale_rule(**fields)
    [error] = caught.value.errors()
    assert error["loc"] == (where,)
    assert words in error["msg"]


# --------------------------------------------------------------------------- observation


@pytest.mark.parametrize(
    ("presented", "window_s", "value", "evidence"),
    [
        (
            REVOKED,
            900,
            37.0,
            "key_ab12cd (Production web), revoked 2026-11-30 14:02 UTC (compromised): "
            "presented 37 times in the last 15m, last from 198.51.100.7 at 12:03 UTC",
        ),
        (  # no client IP, and the last presentation on another day than `now`
            EXPIRED,
            86_400,
            1.0,
            "key_ab12cd (Batch), expired 2026-11-30 09:00 UTC (replaced by key_cd34ef): "
            "presented once in the last 1d, last at 2026-11-30 23:59 UTC",
        ),
        (  # both verdicts; the registry without a row for the key
            StalePresentations(2_000, 3, REVOKED.last_at, "2001:db8::5"),
            3_600,
            2_003.0,
            "key_ab12cd, revoked: presented 2,003 times (2,000 revoked, 3 expired) in the "
            "last 1h, last from 2001:db8::5 at 12:03 UTC",
        ),
        (None, 900, 0.0, "key_ab12cd: not presented in the last 15m"),
    ],
)
def test_observation_and_evidence_at_now(
    presented: StalePresentations | None, window_s: int, value: float, evidence: str
) -> None:
    stats = None if presented is None else WindowStats(presented.presented, stale=presented)
    obs = observe_stale(stale_rule(window_s=window_s), "key_ab12cd", stats, NOW)
    assert obs == Observation(value, int(value), evidence=evidence)


@pytest.mark.parametrize(
    ("threshold", "presented", "condition"),
    [
        (1, 0, Condition.CLEAR),
        (1, 1, Condition.BREACH),
        (5, 4, Condition.CLEAR),
        (5, 5, Condition.BREACH),
    ],
)
def test_the_threshold_is_reached_at_gte(
    threshold: int, presented: int, condition: Condition
) -> None:
    stats = WindowStats(presented, stale=replace(REVOKED, revoked=presented)) if presented else None
    obs = observe_stale(stale_rule(), "key_ab12cd", stats, NOW)
    assert classify(obs, stale_rule(threshold=threshold)) is condition


# --------------------------------------------------------------------------- one cycle


def test_a_cycle_fires_with_the_evidence_then_resolves_when_no_longer_presented() -> None:
    rule = stale_rule()
    other = stale_rule(
        rule_id="stale_1h", window_s="1h", scope={"type": "key", "key_id": "key_x1yz99"}
    )
    [q15, q60] = plan_queries([rule, other])
    assert (q15.kind, q15.window_s, q15.accounts) == (KIND, 900, ("acc_main",))
    assert (q60.window_s, q60.key_pairs) == (3600, (("acc_main", "key_x1yz99"),))

    hot = {("acc_main", "key_ab12cd"): WindowStats(37, stale=REVOKED)}
    answers = {
        (KIND, 900, QueryOptions()): QueryAnswer.of(hot),
        (KIND, 3600, QueryOptions()): QueryAnswer.of({}),
    }
    fired = evaluate(NOW, [rule, other], answers, {}, {})
    fp = fingerprint("stale", "key_ab12cd")
    assert list(fired.changed) == [fp]  # key_x1yz99, not presented, gets no instance
    [n] = fired.notifications({"key_ab12cd": "Production web"})
    assert (n.state, n.value, n.threshold) == (NotificationKind.FIRING, 37.0, 1.0)
    assert n.evidence.startswith("key_ab12cd (Production web), revoked 2026-11-30 14:02 UTC")
    assert fired.history[0].detail == n.evidence

    later = NOW + timedelta(minutes=20)
    quiet = {
        (KIND, 900, QueryOptions()): QueryAnswer.of({}),
        (KIND, 3600, QueryOptions()): QueryAnswer.of({}),
    }
    instances = {"stale": {"key_ab12cd": fired.changed[fp]}}
    resolved = evaluate(later, [rule, other], quiet, instances, {})
    assert resolved.changed[fp].state is AlertState.RESOLVED
    [r] = resolved.notifications({"key_ab12cd": "Production web"})
    assert (r.state, r.value) == (NotificationKind.RESOLVED, 0.0)
    assert r.evidence == "key_ab12cd: not presented in the last 15m"


# --------------------------------------------------------------------------- the bodies


def test_email_slack_and_webhook_bodies_carry_the_evidence() -> None:
    rule = stale_rule()
    hot = {("acc_main", "key_ab12cd"): WindowStats(37, stale=REVOKED)}
    result = evaluate(NOW, [rule], {(KIND, 900, QueryOptions()): QueryAnswer.of(hot)}, {}, {})
    [n] = result.notifications({"key_ab12cd": "Production web"})
    text = observe_stale(stale_rule(), "key_ab12cd", hot[("acc_main", "key_ab12cd")], NOW).evidence

    lines = summary_lines(n)
    assert f"Evidence:  {text}" in lines
    assert "Condition: revoked or expired key presented 37 times ≥ 1 time over 15m" in lines
    message = build_message(n, EmailChannel(to=["ops@example.com"]), EmailConfig(host="127.0.0.1"))
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and text in plain.get_content()
    assert html is not None and "198.51.100.7 at 12:03 UTC" in html.get_content()
    assert text in str(slack_blocks(n)) and fallback_text(n).endswith(text)
    assert webhook_payload(n)["data"]["evidence"] == text
