"""The evaluator with in-memory ports: batching, transitions, publish-then-persist, restart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.evaluator import Evaluator, EvaluatorConfig
from alerting.fingerprint import fingerprint
from alerting.ports import RuleChange
from schemas.alerts import AlertRule, AlertState, NotificationKind, RuleKind, TransitionReason
from tests.fakes.alerting import (
    FakePublisher,
    FakeQueries,
    FakeRules,
    FakeState,
    Landed,
    Requests,
    Wall,
)
from tests.samples.alerting import make_rule

T0 = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)


def rule(rule_id: str, **overrides: Any) -> AlertRule:
    return make_rule(rule_id=rule_id, **overrides)


@dataclass
class Rig:
    """The fakes around one evaluator; the ingest watermark is at T0."""

    queries: FakeQueries = field(default_factory=FakeQueries)
    state: FakeState = field(default_factory=FakeState)
    pub: FakePublisher = field(default_factory=FakePublisher)
    wall: Wall = field(default_factory=lambda: Wall(T0))

    def evaluator(self, rules: list[AlertRule] | FakeRules) -> Evaluator:
        source = rules if isinstance(rules, FakeRules) else FakeRules(rules)
        config = EvaluatorConfig(idle_advance_s=5)
        return Evaluator(self.queries, source, self.state, self.pub, config, wall_clock=self.wall)

    def breach(self, *keys: str, n: int = 500) -> None:
        """`n` requests (more than the sample rules' threshold of 100) on each key at T0."""
        self.queries.add_requests(*(Requests("acc_main", k, T0, count=n) for k in keys))


def rig() -> Rig:
    r = Rig()
    r.queries.land(T0)
    return r


# --------------------------------------------------------------------------- cycles


async def test_queries_per_cycle_are_per_kind_and_window_not_per_key() -> None:
    keys = [f"key_k{i:06d}" for i in range(50)]
    rules = [rule(f"r{i}", scope={"type": "key", "key_id": k}) for i, k in enumerate(keys)]
    rules += [rule("wide", scope={"type": "account"}, kind="error_rate", threshold=5)]
    rules += [rule("slow", kind="latency", percentile="p99", threshold=500, window_s="1h")]
    r = rig()
    for k in keys:
        r.queries.add_key("acc_main", k, f"name of {k}")
    ev = r.evaluator(rules)
    r.breach(*keys[:5])
    report = await ev.run_cycle()
    assert report is not None
    assert len(r.queries.calls) == 3 == report.queries
    assert {(q.kind, q.window_s) for q in r.queries.calls} == {
        (RuleKind.REQUEST_COUNT, 60),
        (RuleKind.ERROR_RATE, 60),
        (RuleKind.LATENCY, 3600),
    }
    assert len(r.pub.sent) == 5
    assert {n.key_name for n in r.pub.sent} == {f"name of {k}" for k in keys[:5]}
    ev.close()


async def test_fires_once_persists_and_restart_does_not_notify_again() -> None:
    r = rig()
    rules = [rule("r1", send_resolved=True)]
    ev = r.evaluator(rules)
    r.breach("key_abc123")
    await ev.run_cycle()
    ev.on_block(Landed(T0 + timedelta(seconds=1)))
    await ev.run_cycle()
    assert [n.state for n in r.pub.sent] == [NotificationKind.FIRING]
    fp = fingerprint("r1", "key_abc123")
    assert r.state.latest[fp].state is AlertState.FIRING
    assert [h.to_state for h in r.state.history(fp)] == [AlertState.FIRING]
    ev.close()

    restarted = r.evaluator(rules)
    r.wall.now += timedelta(seconds=3)
    r.queries.land(T0 + timedelta(seconds=2))
    await restarted.run_cycle()
    assert [n.state for n in r.pub.sent] == [NotificationKind.FIRING]  # nothing new
    r.queries.requests.clear()  # traffic back to normal
    restarted.on_block(Landed(T0 + timedelta(seconds=4)))
    await restarted.run_cycle()
    assert [n.state for n in r.pub.sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    assert r.pub.sent[1].idempotency_key == f"{fp}.1.resolved"
    restarted.close()


async def test_failed_publish_commits_nothing_and_the_next_cycle_repeats_the_decision() -> None:
    r = rig()
    ev = r.evaluator([rule("r1")])
    r.breach("key_abc123")
    r.pub.fail = True
    with pytest.raises(ConnectionError):
        await ev.run_cycle()
    assert r.state.entries == [] and ev.instances() == []
    r.pub.fail = False
    await ev.run_cycle()
    assert [n.idempotency_key for n in r.pub.sent] == [
        f"{fingerprint('r1', 'key_abc123')}.1.firing"
    ]
    ev.close()


async def test_failed_query_gives_explicit_error_state_without_notifying() -> None:
    r = rig()
    ev = r.evaluator([rule("r1")])
    r.queries.fail = {RuleKind.REQUEST_COUNT}
    await ev.run_cycle()
    [inst] = ev.instances()
    assert inst.state is AlertState.ERROR and r.pub.sent == []
    ev.close()


async def test_clear_keys_create_no_instances_and_deleted_rules_drop_theirs() -> None:
    r = rig()
    wide = rule("w", scope={"type": "account"})
    ev = r.evaluator([wide])
    quiet = [f"key_q{i:06d}" for i in range(100)]
    for k in [*quiet, "key_hot0001"]:  # account-wide rules see the account's registered keys
        r.queries.add_key("acc_main", k, f"name of {k}")
    r.queries.add_requests(*(Requests("acc_main", k, T0) for k in quiet))
    r.breach("key_hot0001", n=1000)
    await ev.run_cycle()
    assert [i.key_id for i in ev.instances()] == ["key_hot0001"]
    ev.apply_rule_changes([RuleChange("w", "acc_main", None, 99, T0)])
    assert ev.instances() == [] and ev.rules == {}
    ev.apply_rule_changes([RuleChange("w", "acc_main", wide, 5, T0)])  # older version: ignored
    assert ev.rules == {}
    ev.close()


@dataclass
class Firing:
    """An evaluator whose rule r1 (send_resolved) has just fired for key_abc123."""

    ev: Evaluator
    r1: AlertRule
    rig: Rig


async def firing_r1() -> Firing:
    r = rig()
    r1 = rule("r1", send_resolved=True)
    ev = r.evaluator([r1])
    r.breach("key_abc123")
    await ev.run_cycle()
    return Firing(ev, r1, r)


async def test_deleting_a_rule_resolves_its_firing_alerts_once() -> None:
    f = await firing_r1()
    sent = f.rig.pub.sent
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", None, 10, T0)])
    assert f.ev.instances() == [] and f.ev.rules == {}
    f.ev.on_block(Landed(T0 + timedelta(seconds=1)))
    report = await f.ev.run_cycle()
    assert report is not None and report.queries == 0  # no rules left to query for
    assert [n.state for n in sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    fp = fingerprint("r1", "key_abc123")
    assert sent[1].idempotency_key == f"{fp}.1.resolved"
    assert sent[1].channels == f.r1.channels
    assert f.rig.state.latest[fp].state is AlertState.RESOLVED
    assert f.rig.state.history(fp)[-1].reason is TransitionReason.RULE_DELETED
    f.ev.on_block(Landed(T0 + timedelta(seconds=2)))
    await f.ev.run_cycle()
    assert len(sent) == 2
    f.ev.close()


async def test_restart_closes_alerts_of_rules_deleted_while_it_was_down() -> None:
    f = await firing_r1()
    f.ev.close()
    sent = f.rig.pub.sent
    assert [n.state for n in sent] == [NotificationKind.FIRING]

    restarted = f.rig.evaluator(FakeRules([], deleted=[f.r1]))
    restarted.on_block(Landed(T0 + timedelta(seconds=1)))
    await restarted.run_cycle()
    assert [n.state for n in sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    restarted.apply_rule_changes([RuleChange("r1", "acc_main", None, 50, T0)])  # old news
    restarted.on_block(Landed(T0 + timedelta(seconds=2)))
    await restarted.run_cycle()
    assert len(sent) == 2
    restarted.close()


async def test_a_rule_recreated_before_the_close_keeps_its_episode() -> None:
    f = await firing_r1()
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", None, 10, T0)])
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", f.r1, 11, T0)])
    f.ev.on_block(Landed(T0 + timedelta(seconds=1)))
    await f.ev.run_cycle()
    assert [n.state for n in f.rig.pub.sent] == [NotificationKind.FIRING]
    assert [i.state for i in f.ev.instances()] == [AlertState.FIRING]
    f.ev.close()


async def test_no_evaluation_before_any_watermark() -> None:
    r = Rig()  # nothing has landed
    ev = r.evaluator([rule("r1")])
    assert await ev.run_cycle() is None
    r.wall.now += timedelta(seconds=6)  # idle long enough, and ingest is caught up
    report = await ev.run_cycle()
    assert report is not None and report.evaluated_at == r.wall.now - timedelta(seconds=5)
    ev.close()


async def test_cycles_are_counted_and_a_cycle_without_time_is_not() -> None:
    r = Rig()
    ev = r.evaluator([rule("r1")])
    await ev.run_cycle()
    assert ev.stats.cycles == 0
    ev.on_block(Landed(T0))
    r.breach("key_abc123")
    await ev.run_cycle()
    assert (ev.stats.cycles, ev.stats.transitions, ev.stats.notifications) == (1, 1, 1)
    assert ev.stats.last_evaluated_at == T0
    ev.close()
