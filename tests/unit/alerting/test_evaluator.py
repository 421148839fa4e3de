"""The evaluator with in-memory ports: batching, transitions, publish-then-persist, restart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.eval_clock import EvaluationClock
from alerting.evaluator import Evaluator, EvaluatorConfig
from alerting.fingerprint import fingerprint
from alerting.planning import QueryAnswer, metric_value, observe, plan_queries
from alerting.ports import RuleChange, StatsByKey, StatsQuery, WindowStats
from alerting.state import Observation
from schemas.alerts import (
    AlertHistoryEntry,
    AlertInstance,
    AlertRule,
    AlertState,
    Notification,
    NotificationKind,
    RuleKind,
    TransitionReason,
)

T0 = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)


def rule(rule_id: str, **overrides: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": rule_id,
        "account_id": "acc_main",
        "name": f"Rule {rule_id}",
        "scope": {"type": "key", "key_id": "key_abc123"},
        "kind": "request_count",
        "window_s": "1m",
        "threshold": 100,
    }
    data.update(overrides)
    return AlertRule.model_validate(data)


# --------------------------------------------------------------------------- planning


def test_one_query_per_kind_and_window_over_all_keys() -> None:
    rules = [
        rule("a", scope={"type": "key", "key_id": "key_aaaaaa1"}),
        rule("b", scope={"type": "key", "key_id": "key_bbbbbb1"}),
        rule("c", scope={"type": "account"}, account_id="acc_other"),
        rule("d", kind="error_rate", threshold=5),
        rule("e", window_s="5m"),
        rule("f", kind="latency", percentile="p99", threshold=500, window_s="5m"),
        rule("g", kind="latency", percentile="p50", threshold=50, window_s="5m"),
    ]
    queries = plan_queries(rules)
    assert [(q.kind, q.window_s) for q in queries] == [
        (RuleKind.ERROR_RATE, 60),
        (RuleKind.LATENCY, 300),
        (RuleKind.REQUEST_COUNT, 60),
        (RuleKind.REQUEST_COUNT, 300),
    ]
    count_1m = queries[2]
    assert count_1m.accounts == ("acc_other",)
    assert count_1m.key_pairs == (("acc_main", "key_aaaaaa1"), ("acc_main", "key_bbbbbb1"))
    assert queries[1].quantiles and not queries[2].quantiles and queries[0].errors


def test_key_rules_covered_by_an_account_rule_add_no_keys() -> None:
    [q] = plan_queries([rule("a"), rule("b", scope={"type": "account"})])
    assert q.accounts == ("acc_main",) and q.key_pairs == ()


def test_metric_values_per_kind() -> None:
    stats = WindowStats(requests=200, errors=30, p50_ms=10, p95_ms=80, p99_ms=300)
    assert metric_value(rule("a"), stats) == Observation(200.0, 200)
    assert metric_value(rule("a", kind="error_rate", threshold=5), stats) == Observation(15.0, 200)
    latency = rule("a", kind="latency", percentile="p95", threshold=5)
    assert metric_value(latency, stats) == Observation(80.0, 200)
    assert metric_value(rule("a"), None) == Observation(0.0, 0)
    assert metric_value(latency, None) == Observation(None, 0)


def test_account_rule_observes_keys_with_data_and_keys_with_instances() -> None:
    wide = rule("w", scope={"type": "account"})
    answer = QueryAnswer.of(
        {("acc_main", "key_aaaaaa1"): WindowStats(5), ("acc_other", "key_zzzzzz1"): WindowStats(9)}
    )
    seen = dict(observe(wide, answer, ["key_bbbbbb1"]))
    assert seen == {"key_aaaaaa1": Observation(5.0, 5), "key_bbbbbb1": Observation(0.0, 0)}
    failed = observe(wide, QueryAnswer.failed("boom"), ["key_bbbbbb1"])
    assert failed == [("key_bbbbbb1", Observation(None, error="boom"))]


# --------------------------------------------------------------------------- clock


def test_clock_follows_watermark_and_advances_only_when_idle_and_caught_up() -> None:
    clock = EvaluationClock(idle_advance_s=10)
    wall = T0
    assert clock.now(wall, caught_up=False) is None
    clock.landed(T0 - timedelta(seconds=2), wall)
    assert clock.now(wall, caught_up=True) == T0 - timedelta(seconds=2)
    later = wall + timedelta(seconds=30)
    assert clock.now(later, caught_up=False) == T0 - timedelta(seconds=2)  # data may be late
    assert clock.now(later, caught_up=True) == later - timedelta(seconds=10)
    clock.landed(T0, later)  # an older watermark never moves the clock back
    assert clock.now(later, caught_up=True) == later - timedelta(seconds=10)
    future = EvaluationClock(idle_advance_s=10)
    future.landed(T0 + timedelta(hours=1), T0)
    assert future.now(T0, caught_up=False) == T0  # capped at wall time


# --------------------------------------------------------------------------- fakes


class FakeQueries:
    def __init__(self) -> None:
        self.stats: dict[tuple[RuleKind, int], StatsByKey] = {}
        self.calls: list[StatsQuery] = []
        self.fail: set[RuleKind] = set()
        self.watermark: datetime | None = T0

    def window_stats(self, query: StatsQuery, now: datetime) -> StatsByKey:
        self.calls.append(query)
        if query.kind in self.fail:
            raise RuntimeError("clickhouse down")
        return dict(self.stats.get((query.kind, query.window_s), {}))

    def ingest_watermark(self) -> datetime | None:
        return self.watermark

    def ingest_offsets(self) -> dict[int, int]:
        return {}

    def key_names(self, key_ids: Sequence[str]) -> dict[str, str]:
        return {k: f"name of {k}" for k in key_ids}


class FakeRules:
    def __init__(self, rules: list[AlertRule], deleted: list[AlertRule] | None = None) -> None:
        self.rules = rules
        self.deleted = deleted or []

    def load_rules(self) -> list[tuple[AlertRule, int]]:
        return [(r, i) for i, r in enumerate(self.rules)]

    def load_deleted_rules(self) -> list[tuple[AlertRule, int]]:
        return [(r, 100 + i) for i, r in enumerate(self.deleted)]


class FakeState:
    def __init__(self) -> None:
        self.history: list[AlertHistoryEntry] = []
        self.latest: dict[str, AlertInstance] = {}

    def load_instances(self) -> list[AlertInstance]:
        return list(self.latest.values())

    def save(
        self, history: Sequence[AlertHistoryEntry], instances: Sequence[AlertInstance], token: str
    ) -> None:
        self.history.extend(history)
        self.latest.update({i.fingerprint: i for i in instances})


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.fail = False

    async def publish(self, notifications: Sequence[Notification]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.extend(notifications)


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make(
    rules: list[AlertRule] | FakeRules,
    queries: FakeQueries,
    state: FakeState,
    pub: FakePublisher,
    wall: Wall,
) -> Evaluator:
    source = rules if isinstance(rules, FakeRules) else FakeRules(rules)
    return Evaluator(
        queries, source, state, pub, EvaluatorConfig(idle_advance_s=5), wall_clock=wall
    )


class Landed:
    def __init__(self, at: datetime, count: int = 10) -> None:
        self.count = count
        self.max_occurred_at_ms = int(at.timestamp() * 1000)


def breach(queries: FakeQueries, *keys: str, n: int = 500) -> None:
    queries.stats[(RuleKind.REQUEST_COUNT, 60)] = {("acc_main", k): WindowStats(n) for k in keys}


# --------------------------------------------------------------------------- cycles


async def test_queries_per_cycle_are_per_kind_and_window_not_per_key() -> None:
    keys = [f"key_k{i:06d}" for i in range(50)]
    rules = [rule(f"r{i}", scope={"type": "key", "key_id": k}) for i, k in enumerate(keys)]
    rules += [rule("wide", scope={"type": "account"}, kind="error_rate", threshold=5)]
    rules += [rule("slow", kind="latency", percentile="p99", threshold=500, window_s="1h")]
    queries, pub, wall = FakeQueries(), FakePublisher(), Wall()
    ev = make(rules, queries, FakeState(), pub, wall)
    breach(queries, *keys[:5])
    report = await ev.run_cycle()
    assert report is not None
    assert len(queries.calls) == 3 == report.queries
    assert {(q.kind, q.window_s) for q in queries.calls} == {
        (RuleKind.REQUEST_COUNT, 60),
        (RuleKind.ERROR_RATE, 60),
        (RuleKind.LATENCY, 3600),
    }
    assert len(pub.sent) == 5
    assert {n.key_name for n in pub.sent} == {f"name of {k}" for k in keys[:5]}
    ev.close()


async def test_fires_once_persists_and_restart_does_not_notify_again() -> None:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    rules = [rule("r1", send_resolved=True)]
    ev = make(rules, queries, state, pub, wall)
    breach(queries, "key_abc123")
    await ev.run_cycle()
    ev.on_block(Landed(T0 + timedelta(seconds=1)))
    await ev.run_cycle()
    assert [n.state for n in pub.sent] == [NotificationKind.FIRING]
    fp = fingerprint("r1", "key_abc123")
    assert state.latest[fp].state is AlertState.FIRING
    assert [h.to_state for h in state.history] == [AlertState.FIRING]
    ev.close()

    restarted = make(rules, queries, state, pub, wall)
    wall.now += timedelta(seconds=3)
    queries.watermark = T0 + timedelta(seconds=2)
    await restarted.run_cycle()
    assert [n.state for n in pub.sent] == [NotificationKind.FIRING]  # nothing new
    queries.stats.clear()  # traffic back to normal
    restarted.on_block(Landed(T0 + timedelta(seconds=4)))
    await restarted.run_cycle()
    assert [n.state for n in pub.sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    assert pub.sent[1].idempotency_key == f"{fp}.1.resolved"
    restarted.close()


async def test_failed_publish_commits_nothing_and_the_next_cycle_repeats_the_decision() -> None:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    ev = make([rule("r1")], queries, state, pub, wall)
    breach(queries, "key_abc123")
    pub.fail = True
    with pytest.raises(ConnectionError):
        await ev.run_cycle()
    assert state.history == [] and ev.instances() == []
    pub.fail = False
    await ev.run_cycle()
    assert [n.idempotency_key for n in pub.sent] == [f"{fingerprint('r1', 'key_abc123')}.1.firing"]
    ev.close()


async def test_failed_query_gives_explicit_error_state_without_notifying() -> None:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    ev = make([rule("r1")], queries, state, pub, wall)
    queries.fail = {RuleKind.REQUEST_COUNT}
    await ev.run_cycle()
    [inst] = ev.instances()
    assert inst.state is AlertState.ERROR and pub.sent == []
    ev.close()


async def test_clear_keys_create_no_instances_and_deleted_rules_drop_theirs() -> None:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    wide = rule("w", scope={"type": "account"})
    ev = make([wide], queries, state, pub, wall)
    queries.stats[(RuleKind.REQUEST_COUNT, 60)] = {
        ("acc_main", f"key_q{i:06d}"): WindowStats(1) for i in range(100)
    } | {("acc_main", "key_hot0001"): WindowStats(1000)}
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
    queries: FakeQueries
    state: FakeState
    pub: FakePublisher
    wall: Wall


async def firing_r1() -> Firing:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    r1 = rule("r1", send_resolved=True)
    ev = make([r1], queries, state, pub, wall)
    breach(queries, "key_abc123")
    await ev.run_cycle()
    return Firing(ev, r1, queries, state, pub, wall)


async def test_deleting_a_rule_resolves_its_firing_alerts_once() -> None:
    f = await firing_r1()
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", None, 10, T0)])
    assert f.ev.instances() == [] and f.ev.rules == {}
    f.ev.on_block(Landed(T0 + timedelta(seconds=1)))
    report = await f.ev.run_cycle()
    assert report is not None and report.queries == 0  # no rules left to query for
    assert [n.state for n in f.pub.sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    fp = fingerprint("r1", "key_abc123")
    assert f.pub.sent[1].idempotency_key == f"{fp}.1.resolved"
    assert f.pub.sent[1].channels == f.r1.channels
    assert f.state.latest[fp].state is AlertState.RESOLVED
    assert f.state.history[-1].reason is TransitionReason.RULE_DELETED
    f.ev.on_block(Landed(T0 + timedelta(seconds=2)))
    await f.ev.run_cycle()
    assert len(f.pub.sent) == 2
    f.ev.close()


async def test_restart_closes_alerts_of_rules_deleted_while_it_was_down() -> None:
    f = await firing_r1()
    f.ev.close()
    assert [n.state for n in f.pub.sent] == [NotificationKind.FIRING]

    restarted = make(FakeRules([], deleted=[f.r1]), f.queries, f.state, f.pub, f.wall)
    restarted.on_block(Landed(T0 + timedelta(seconds=1)))
    await restarted.run_cycle()
    assert [n.state for n in f.pub.sent] == [NotificationKind.FIRING, NotificationKind.RESOLVED]
    restarted.apply_rule_changes([RuleChange("r1", "acc_main", None, 50, T0)])  # old news
    restarted.on_block(Landed(T0 + timedelta(seconds=2)))
    await restarted.run_cycle()
    assert len(f.pub.sent) == 2
    restarted.close()


async def test_a_rule_recreated_before_the_close_keeps_its_episode() -> None:
    f = await firing_r1()
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", None, 10, T0)])
    f.ev.apply_rule_changes([RuleChange("r1", "acc_main", f.r1, 11, T0)])
    f.ev.on_block(Landed(T0 + timedelta(seconds=1)))
    await f.ev.run_cycle()
    assert [n.state for n in f.pub.sent] == [NotificationKind.FIRING]
    assert [i.state for i in f.ev.instances()] == [AlertState.FIRING]
    f.ev.close()


async def test_no_evaluation_before_any_watermark() -> None:
    queries, state, pub, wall = FakeQueries(), FakeState(), FakePublisher(), Wall()
    queries.watermark = None
    ev = make([rule("r1")], queries, state, pub, wall)
    assert await ev.run_cycle() is None
    wall.now += timedelta(seconds=6)  # idle long enough, and ingest is caught up
    report = await ev.run_cycle()
    assert report is not None and report.evaluated_at == wall.now - timedelta(seconds=5)
    ev.close()
