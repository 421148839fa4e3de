"""The pure cycle: `evaluate(now, rules, answers, instances, closing)` and its notifications."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from alerting.evaluation import Closing, evaluate
from alerting.fingerprint import fingerprint
from alerting.planning import QueryAnswer
from alerting.ports import QueryOptions, WindowStats
from schemas.alerts import AlertInstance, AlertRule, AlertState, NotificationKind, RuleKind
from tests.samples.alerting import make_rule

NOW = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)
COUNT_1M = (RuleKind.REQUEST_COUNT, 60, QueryOptions())
EMAIL = [{"type": "email", "to": ["ops@example.com"]}]


def answer(**requests: int) -> QueryAnswer:
    """Request counts of acc_main's keys in the window."""
    return QueryAnswer.of({("acc_main", k): WindowStats(n) for k, n in requests.items()})


def firing(rule: AlertRule, key_id: str) -> AlertInstance:
    """An instance of `rule` that fired a minute before NOW (episode 1)."""
    since = NOW - timedelta(minutes=1)
    return AlertInstance(
        fingerprint=fingerprint(rule.rule_id, key_id),
        rule_id=rule.rule_id,
        account_id=rule.account_id,
        key_id=key_id,
        state=AlertState.FIRING,
        since=since,
        episode=1,
        started_at=since,
        fired_at=since,
        last_notified_at=since,
    )


def test_a_breach_creates_and_fires_an_instance_a_clear_key_creates_none() -> None:
    wide = make_rule(rule_id="wide", scope={"type": "account"}, channels=EMAIL)
    result = evaluate(NOW, [wide], {COUNT_1M: answer(key_hot00001=500, key_calm0001=3)}, {}, {})

    fp = fingerprint("wide", "key_hot00001")
    assert result.observations == 2
    assert list(result.changed) == [fp]
    assert result.changed[fp].state is AlertState.FIRING
    assert [(h.from_state, h.to_state) for h in result.history] == [
        (AlertState.NORMAL, AlertState.FIRING)
    ]
    [decision] = result.decisions
    assert (decision.kind, decision.idempotency_key) == (NotificationKind.FIRING, f"{fp}.1.firing")
    assert result.key_ids == ["key_hot00001"]

    [named] = result.notifications({"key_hot00001": "Production"})
    assert (named.key_name, named.value, named.occurred_at) == ("Production", 500.0, NOW)
    assert named.channels == wide.channels
    [unnamed] = result.notifications({})
    assert unnamed.key_name == "key_hot00001"


def test_an_existing_instance_advances_and_an_unchanged_one_is_left_out() -> None:
    r1 = make_rule(rule_id="r1", scope={"type": "account"}, send_resolved=True)
    instances = {"r1": {k: firing(r1, k) for k in ("key_gone0001", "key_busy0001")}}
    # key_gone0001 has no traffic any more (0 requests: clear); key_busy0001 still breaches.
    result = evaluate(NOW, [r1], {COUNT_1M: answer(key_busy0001=900)}, instances, {})

    gone = fingerprint("r1", "key_gone0001")
    assert result.observations == 2
    assert list(result.changed) == [gone]
    assert result.changed[gone].state is AlertState.RESOLVED
    [resolved] = result.decisions
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.idempotency_key == f"{gone}.1.resolved"
    assert (resolved.started_at, resolved.ended_at) == (NOW - timedelta(minutes=1), NOW)


def test_a_failed_query_puts_the_concerned_keys_in_error_without_notifying() -> None:
    key_rule = make_rule(rule_id="k")
    wide = make_rule(rule_id="w", scope={"type": "account"})
    instances = {"w": {"key_old00001": firing(wide, "key_old00001")}}
    failed = {COUNT_1M: QueryAnswer.failed("query failed: OperationalError")}
    result = evaluate(NOW, [key_rule, wide], failed, instances, {})

    assert {(i.rule_id, i.key_id, i.state) for i in result.changed.values()} == {
        ("k", "key_abc123", AlertState.ERROR),
        ("w", "key_old00001", AlertState.ERROR),
    }
    assert result.decisions == []
    assert {h.detail for h in result.history} == {"query failed: OperationalError"}


def test_a_deleted_rule_closes_its_instances_with_its_last_definition() -> None:
    last = make_rule(rule_id="gone", send_resolved=True, channels=EMAIL)
    closing = {"gone": Closing(last, [firing(last, "key_abc123")])}
    result = evaluate(NOW, [], {}, {}, closing)

    fp = fingerprint("gone", "key_abc123")
    assert result.observations == 0
    assert result.changed[fp].state is AlertState.RESOLVED
    [n] = result.notifications({"key_abc123": "Production"})
    assert (n.state, n.rule.rule_id, n.channels) == (
        NotificationKind.RESOLVED,
        "gone",
        last.channels,
    )


def test_evaluate_is_pure() -> None:
    r1 = make_rule(rule_id="r1", scope={"type": "account"})
    instances = {"r1": {"key_abc123": firing(r1, "key_abc123")}}
    answers = {COUNT_1M: answer(key_abc123=0, key_new00001=200)}
    before = copy.deepcopy(instances)

    first = evaluate(NOW, [r1], answers, instances, {})
    second = evaluate(NOW, [r1], answers, instances, {})

    assert instances == before
    assert first == second
    assert {i.key_id for i in first.changed.values()} == {"key_abc123", "key_new00001"}
