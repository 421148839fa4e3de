"""`credential_stuffing`, pure: the observation of hand-built per-IP figures at `now` —
fires at the threshold of distinct bad keys, stays quiet below it, clears without
figures — its evidence, exactly, and one evaluation cycle to a notification about the IP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.detectors import OBSERVERS
from alerting.detectors.stuffing import observe_stuffing
from alerting.evaluation import evaluate
from alerting.fingerprint import fingerprint
from alerting.planning import QueryAnswer, plan_queries
from alerting.ports import QueryOptions, StuffingSource, WindowStats
from alerting.render import summary_lines
from alerting.state import Condition, Observation, classify
from schemas.alerts import AlertRule, AlertState, NotificationKind, RuleKind

NOW = datetime(2026, 12, 1, 12, 14, 40, tzinfo=UTC)
IP = "ip:203.0.113.9"
KIND = RuleKind.CREDENTIAL_STUFFING
FIRST = NOW.replace(minute=1, second=12)
LAST = NOW.replace(minute=14, second=3)


def rule(**fields: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": "stuffing",
        "account_id": "acc_main",
        "name": "Credential stuffing",
        "scope": {"type": "account"},
        "kind": "credential_stuffing",
    }
    return AlertRule.model_validate(data | fields)


def source(
    distinct: int,
    outcomes: tuple[tuple[str, int], ...],
    first: datetime = FIRST,
    last: datetime = LAST,
    ip: str = "203.0.113.9",
) -> WindowStats:
    attempts = sum(n for _, n in outcomes)
    return WindowStats(
        distinct, stuffing=StuffingSource(ip, distinct, attempts, outcomes, first, last)
    )


STUFFED = source(27, (("revoked", 4), ("unknown", 31)))


def observe(
    r: AlertRule, s: WindowStats | None, subject: str = IP
) -> tuple[Observation, Condition]:
    obs = observe_stuffing(r, subject, s, NOW)
    return obs, classify(obs, r)


def test_registered_with_the_evaluator_and_defaults() -> None:
    assert OBSERVERS[KIND] is observe_stuffing
    r = rule()
    assert (r.threshold, r.window_s) == (10.0, 900)
    assert r.effective_min_requests == 0


def test_fires_on_many_distinct_bad_keys_with_the_evidence() -> None:
    obs, cond = observe(rule(), STUFFED)
    assert cond is Condition.BREACH
    assert obs == Observation(
        27.0,
        sample_count=35,
        evidence="IP 203.0.113.9 presented 27 distinct invalid or revoked keys in the last 15m "
        "(35 attempts: 31 unknown, 4 revoked) between 12:01 and 12:14 UTC",
    )
    assert obs.breach is None  # the rule's own comparison decides


@pytest.mark.parametrize(
    ("threshold", "distinct", "condition"),
    [
        (10, 9, Condition.CLEAR),
        (10, 10, Condition.BREACH),
        (2, 1, Condition.CLEAR),
        (2, 2, Condition.BREACH),
    ],
)
def test_the_threshold_is_reached_at_gte(
    threshold: int, distinct: int, condition: Condition
) -> None:
    stats = source(distinct, (("unknown", distinct),))
    assert observe(rule(threshold=threshold), stats)[1] is condition


def test_a_few_bad_keys_stay_quiet_and_say_so() -> None:
    one = source(
        1, (("expired", 3),), first=NOW.replace(minute=7), last=NOW.replace(minute=7, second=50)
    )
    obs, cond = observe(rule(), one, "ip:2001:db8::5")
    assert cond is Condition.CLEAR
    assert obs.evidence == (
        "IP 2001:db8::5 presented 1 distinct invalid or revoked key in the last 15m "
        "(3 attempts: 3 expired) at 12:07 UTC"
    )


def test_without_figures_the_ip_observes_zero_and_clears() -> None:
    obs, cond = observe(rule(window_s="1h"), None)
    assert cond is Condition.CLEAR
    assert obs == Observation(
        0.0, evidence="IP 203.0.113.9: no invalid or revoked keys presented in the last 1h"
    )


def test_evidence_dates_a_time_not_on_nows_day_and_orders_verdicts_by_count() -> None:
    stats = source(
        1_204,
        (("revoked", 2), ("deleted", 2), ("malformed", 400), ("unknown", 1_000)),
        first=NOW - timedelta(hours=13),
        last=NOW - timedelta(minutes=1),
    )
    obs, cond = observe(rule(window_s="1d", threshold=1_000), stats)
    assert cond is Condition.BREACH
    assert obs.evidence == (
        "IP 203.0.113.9 presented 1,204 distinct invalid or revoked keys in the last 1d "
        "(1,404 attempts: 1,000 unknown, 400 malformed, 2 deleted, 2 revoked) "
        "between 2026-11-30 23:14 and 12:13 UTC"
    )


def test_a_cycle_fires_a_notification_about_the_ip_then_resolves() -> None:
    r = rule()
    [query] = plan_queries([r])
    assert (query.kind, query.window_s, query.accounts) == (KIND, 900, ("acc_main",))
    key = (KIND, 900, QueryOptions())
    hot = {("acc_main", IP): STUFFED, ("acc_main", "ip:192.0.2.1"): source(3, (("revoked", 3),))}
    fired = evaluate(NOW, [r], {key: QueryAnswer.of(hot)}, {}, {})
    fp = fingerprint("stuffing", IP)
    assert fired.changed[fp].state is AlertState.FIRING
    assert fingerprint("stuffing", "ip:192.0.2.1") not in {
        f for f, i in fired.changed.items() if i.state is AlertState.FIRING
    }
    [n] = fired.notifications({})
    assert (n.state, n.key_id, n.value, n.threshold) == (NotificationKind.FIRING, IP, 27.0, 10.0)
    assert n.evidence.startswith("IP 203.0.113.9 presented 27 distinct")
    assert any(
        line.startswith("Evidence:  IP 203.0.113.9 presented 27") for line in summary_lines(n)
    )

    later = NOW + timedelta(minutes=20)
    instances = {"stuffing": {IP: fired.changed[fp]}}
    resolved = evaluate(later, [r], {key: QueryAnswer.of({})}, instances, {})
    assert resolved.changed[fp].state is AlertState.RESOLVED
    [done] = resolved.notifications({})
    assert (done.state, done.value) == (NotificationKind.RESOLVED, 0.0)
