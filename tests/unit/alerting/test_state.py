"""The pure transition function: examples, and properties over evaluation sequences."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.fingerprint import fingerprint, idempotency_key
from alerting.notifications import build_notification
from alerting.state import (
    NotifyDecision,
    Observation,
    close_for_deleted_rule,
    new_instance,
    transition,
)
from schemas.alerts import (
    AlertInstance,
    AlertRule,
    AlertState,
    NotificationKind,
    TransitionReason,
)
from tests.samples.alerting import make_rule

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BREACH = Observation(150.0, sample_count=150)
CLEAR = Observation(50.0, sample_count=50)
NODATA = Observation(None)
ERROR = Observation(None, error="query failed")


class Run:
    """Feeds observations to one instance and records everything it produced."""

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.inst = new_instance(rule, "key_abc123")
        self.now = T0
        self.decisions: list[NotifyDecision] = []
        self.states: list[AlertState] = []

    def step(self, obs: Observation, after_s: float = 0) -> list[NotifyDecision]:
        self.now += timedelta(seconds=after_s)
        before = self.inst
        inst, decisions, history = transition(self.inst, obs, self.rule, self.now)
        if history:
            assert history[0].from_state is before.state
            assert history[-1].instance == inst
            for a, b in itertools.pairwise(history):
                assert a.to_state is b.from_state
        else:
            assert inst == before
            assert not decisions
        self.inst = inst
        self.decisions += decisions
        self.states.append(inst.state)
        return decisions

    def state(self) -> AlertState:
        return self.inst.state

    def kinds(self) -> list[NotificationKind]:
        return [d.kind for d in self.decisions]


# --------------------------------------------------------------------------- examples


def test_breach_with_for_zero_fires_at_once_and_resolves() -> None:
    run = Run(make_rule())
    [firing] = run.step(BREACH)
    assert run.state() is AlertState.FIRING
    assert firing.kind is NotificationKind.FIRING
    assert firing.episode == 1
    assert firing.idempotency_key == idempotency_key(
        fingerprint("rule_1", "key_abc123"), 1, NotificationKind.FIRING
    )
    assert run.step(BREACH, 5) == []
    [resolved] = run.step(CLEAR, 5)
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.started_at == T0
    assert resolved.ended_at == T0 + timedelta(seconds=10)
    assert run.state() is AlertState.RESOLVED
    run.step(CLEAR, 5)
    assert run.state() is AlertState.NORMAL


def test_pending_that_clears_notifies_nobody() -> None:
    run = Run(make_rule(for_s="1m"))
    assert run.step(BREACH) == []
    assert run.state() is AlertState.PENDING
    assert run.step(BREACH, 59) == []
    _, decisions, history = transition(run.inst, CLEAR, run.rule, run.now + timedelta(seconds=1))
    assert decisions == []
    assert [(h.from_state, h.to_state) for h in history] == [
        (AlertState.PENDING, AlertState.NORMAL)
    ]


def test_deleting_the_rule_resolves_an_open_episode_and_settles_the_rest() -> None:
    run = Run(make_rule(send_resolved=True))
    run.step(BREACH)
    later = run.now + timedelta(seconds=30)
    inst, [resolved], [entry] = close_for_deleted_rule(run.inst, run.rule, later)
    assert inst.state is AlertState.RESOLVED and not inst.episode_open
    assert resolved.kind is NotificationKind.RESOLVED
    assert (resolved.episode, resolved.started_at, resolved.ended_at) == (1, T0, later)
    assert resolved.idempotency_key == idempotency_key(
        fingerprint("rule_1", "key_abc123"), 1, NotificationKind.RESOLVED
    )
    assert entry.reason is TransitionReason.RULE_DELETED

    silent = Run(make_rule(send_resolved=False))
    silent.step(BREACH)
    inst, decisions, _ = close_for_deleted_rule(silent.inst, silent.rule, later)
    assert inst.state is AlertState.RESOLVED and decisions == []

    pending = Run(make_rule(for_s="1m"))
    pending.step(BREACH)
    inst, decisions, [entry] = close_for_deleted_rule(pending.inst, pending.rule, later)
    assert (inst.state, decisions, entry.from_state) == (
        AlertState.NORMAL,
        [],
        AlertState.PENDING,
    )

    settled = new_instance(make_rule(), "key_abc123")
    assert close_for_deleted_rule(settled, make_rule(), later) == (settled, [], [])


def test_pending_fires_after_for_and_keeps_breach_start() -> None:
    run = Run(make_rule(for_s="1m"))
    run.step(BREACH)
    [firing] = run.step(BREACH, 60)
    assert firing.started_at == T0
    assert run.inst.fired_at == T0 + timedelta(seconds=60)
    assert run.inst.episode == 1


def test_keep_firing_for_absorbs_flapping_within_one_episode() -> None:
    run = Run(make_rule(keep_firing_for_s="2m"))
    run.step(BREACH)
    assert run.step(CLEAR, 10) == []
    assert run.state() is AlertState.RECOVERING
    assert run.step(BREACH, 30) == []
    assert run.state() is AlertState.FIRING
    assert run.step(CLEAR, 10) == []
    assert run.step(CLEAR, 119) == []
    [resolved] = run.step(CLEAR, 1)
    assert resolved.kind is NotificationKind.RESOLVED
    assert resolved.episode == 1
    assert run.kinds() == [NotificationKind.FIRING, NotificationKind.RESOLVED]


def test_repeat_after_interval_only_while_breaching() -> None:
    run = Run(make_rule(repeat_interval_s="10m"))
    run.step(BREACH)
    assert run.step(BREACH, 599) == []
    [repeat] = run.step(BREACH, 1)
    assert (repeat.kind, repeat.repeat_n) == (NotificationKind.REPEAT, 1)
    assert repeat.idempotency_key.endswith(".1.repeat.1")
    [repeat2] = run.step(BREACH, 600)
    assert repeat2.repeat_n == 2
    [resolved] = run.step(CLEAR, 1)
    assert resolved.kind is NotificationKind.RESOLVED


def test_send_resolved_false_resolves_silently() -> None:
    run = Run(make_rule(send_resolved=False))
    run.step(BREACH)
    assert run.step(CLEAR, 1) == []
    assert run.state() is AlertState.RESOLVED


def test_second_episode_gets_new_keys() -> None:
    run = Run(make_rule())
    run.step(BREACH)
    run.step(CLEAR, 1)
    [firing2] = run.step(BREACH, 1)
    assert firing2.episode == 2
    assert len({d.idempotency_key for d in run.decisions}) == 3


def test_nodata_and_error_are_explicit_and_silent() -> None:
    rule = make_rule(kind="error_rate", threshold=5, min_requests=20)
    run = Run(rule)
    assert run.step(Observation(50.0, sample_count=19)) == []
    assert run.state() is AlertState.NODATA
    assert run.step(ERROR, 5) == []
    assert run.state() is AlertState.ERROR
    _, _, history = transition(run.inst, NODATA, rule, run.now)
    assert history[0].reason is TransitionReason.NO_DATA
    [firing] = run.step(Observation(50.0, sample_count=20), 5)
    assert firing.kind is NotificationKind.FIRING


def test_open_episode_survives_nodata_without_second_firing() -> None:
    run = Run(make_rule())
    run.step(BREACH)
    assert run.step(NODATA, 5) == []
    assert run.state() is AlertState.NODATA
    assert run.inst.episode_open
    assert run.step(BREACH, 5) == []
    assert run.state() is AlertState.FIRING
    assert run.step(ERROR, 5) == []
    [resolved] = run.step(CLEAR, 5)
    assert resolved.episode == 1
    assert run.kinds() == [NotificationKind.FIRING, NotificationKind.RESOLVED]


def test_pending_is_dropped_by_nodata() -> None:
    run = Run(make_rule(for_s="1m"))
    run.step(BREACH)
    run.step(NODATA, 30)
    assert run.inst.started_at is None
    run.step(BREACH, 30)
    assert run.state() is AlertState.PENDING
    assert run.step(BREACH, 59) == []
    assert len(run.step(BREACH, 1)) == 1


def test_comparators_below_threshold() -> None:
    run = Run(make_rule(comparator="lt", threshold=10))
    assert len(run.step(Observation(0.0))) == 1


def test_restart_from_last_history_entry_does_not_notify_again() -> None:
    rule = make_rule(for_s="1m", repeat_interval_s="10m")
    run = Run(rule)
    run.step(BREACH)
    run.step(BREACH, 60)
    restored = AlertInstance.model_validate_json(run.inst.model_dump_json())
    _, decisions, history = transition(restored, BREACH, rule, run.now + timedelta(seconds=5))
    assert decisions == [] and history == []


def test_rejects_time_going_backwards_and_wrong_rule() -> None:
    run = Run(make_rule())
    run.step(BREACH, 10)
    with pytest.raises(ValueError, match="precedes"):
        transition(run.inst, CLEAR, run.rule, T0)
    with pytest.raises(ValueError, match="rule_2"):
        transition(run.inst, CLEAR, make_rule(rule_id="rule_2"), run.now)
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(run.inst, CLEAR, run.rule, run.now.replace(tzinfo=None))


def test_build_notification_from_decision() -> None:
    rule = make_rule(
        channels=[{"type": "email", "to": ["ops@example.com"]}], kind="latency", percentile="p99"
    )
    run = Run(rule)
    [decision] = run.step(Observation(900.0, sample_count=10))
    n = build_notification(decision, rule, "Production")
    assert n.idempotency_key == decision.idempotency_key
    assert (n.rule.name, n.rule.percentile, n.key_name) == (
        rule.name,
        rule.percentile,
        "Production",
    )
    assert n.state is NotificationKind.FIRING
    assert n.channels == rule.channels
    assert n.occurred_at == T0


# --------------------------------------------------------------------------- properties

observations = st.sampled_from(["breach", "clear", "nodata", "error"])
OBS = {"breach": BREACH, "clear": CLEAR, "nodata": NODATA, "error": ERROR}
steps = st.lists(st.tuples(st.integers(0, 400), observations), min_size=1, max_size=60)
rules = st.builds(
    lambda f, k, r, s: make_rule(
        for_s=f, keep_firing_for_s=k, repeat_interval_s=r, send_resolved=s
    ),
    st.sampled_from([0, 60, 300]),
    st.sampled_from([0, 60, 300]),
    st.sampled_from([0, 600]),
    st.booleans(),
)


def _check_step(
    rule: AlertRule,
    name: str,
    before: AlertState,
    after: AlertState,
    now: datetime,
    breach_since: datetime | None,
    decisions: list[NotifyDecision],
) -> None:
    if name in ("nodata", "error"):
        assert decisions == [], "nodata and error never notify"
    if before is AlertState.PENDING and after is AlertState.NORMAL:
        assert decisions == [], "a pending instance that clears notifies nobody"
    for d in decisions:
        if d.kind is NotificationKind.FIRING:
            assert breach_since is not None
            assert (now - breach_since).total_seconds() >= rule.for_s
            assert now - d.started_at >= timedelta(seconds=rule.for_s)


def _check_episode(rule: AlertRule, episode: int, ds: list[NotifyDecision]) -> None:
    kinds = [d.kind for d in ds]
    assert kinds[0] is NotificationKind.FIRING, "an episode opens with its firing"
    assert kinds.count(NotificationKind.FIRING) == 1, "at most one firing per episode"
    if NotificationKind.RESOLVED in kinds:
        assert rule.send_resolved
        assert kinds[-1] is NotificationKind.RESOLVED, "nothing after resolved"
        assert kinds.count(NotificationKind.RESOLVED) == 1
    repeats = [d for d in ds if d.kind is NotificationKind.REPEAT]
    if rule.repeat_interval_s == 0:
        assert not repeats
    assert [d.repeat_n for d in repeats] == list(range(1, len(repeats) + 1))
    sent = [d for d in ds if d.kind is not NotificationKind.RESOLVED]
    for a, b in itertools.pairwise(sent):
        assert (b.at - a.at).total_seconds() >= rule.repeat_interval_s
    for d in ds:
        assert d.idempotency_key == idempotency_key(d.fingerprint, episode, d.kind, d.repeat_n)


@settings(max_examples=300, deadline=None)
@given(rule=rules, trace=steps)
def test_properties_over_evaluation_sequences(
    rule: AlertRule, trace: list[tuple[int, str]]
) -> None:
    run = Run(rule)
    breach_since: datetime | None = None
    for dt, name in trace:
        now = run.now + timedelta(seconds=dt)
        breach_since = (breach_since or now) if name == "breach" else None
        before = run.inst.state
        decisions = run.step(OBS[name], dt)
        _check_step(rule, name, before, run.inst.state, now, breach_since, decisions)

    keys = [d.idempotency_key for d in run.decisions]
    assert len(keys) == len(set(keys)), "idempotency keys are unique"

    by_episode: dict[int, list[NotifyDecision]] = defaultdict(list)
    for d in run.decisions:
        by_episode[d.episode].append(d)
    assert sorted(by_episode) == list(range(1, len(by_episode) + 1))
    for episode, ds in by_episode.items():
        _check_episode(rule, episode, ds)
    # Firing notifications are exactly the episodes entered.
    assert len(by_episode) == run.inst.episode
