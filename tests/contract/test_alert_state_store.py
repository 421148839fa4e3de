"""`AlertStateStore`: the latest state per instance, the history in order, and a retried
save (same token) that changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.state import Observation, Transition, new_instance, transition
from schemas.alerts import AlertState
from tests.contract.backends import Backend
from tests.samples.alerting import make_rule

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
"""Whole milliseconds: ClickHouse keeps times to the millisecond."""
RULE = make_rule(send_resolved=True)
BREACH = Observation(500.0, sample_count=500)
CLEAR = Observation(3.0, sample_count=3)


def fired(key_id: str = "key_abc123") -> Transition:
    return transition(new_instance(RULE, key_id), BREACH, RULE, T0)


def test_nothing_saved_loads_nothing(backend: Backend) -> None:
    states = backend.states()
    assert states.load_instances() == []
    assert states.history(fired().instance.fingerprint) == []


def test_latest_state_per_instance_and_the_whole_history(backend: Backend) -> None:
    states = backend.states()
    a, b = fired("key_aaaaaa1"), fired("key_bbbbbb1")
    states.save([*a.history, *b.history], [a.instance, b.instance], "cycle-1")
    resolved = transition(a.instance, CLEAR, RULE, T0 + timedelta(seconds=5))
    assert resolved.instance.state is AlertState.RESOLVED
    states.save(resolved.history, [resolved.instance], "cycle-2")

    loaded = {i.fingerprint: i for i in states.load_instances()}
    assert loaded == {
        a.instance.fingerprint: resolved.instance,
        b.instance.fingerprint: b.instance,
    }
    assert states.history(a.instance.fingerprint) == [*a.history, *resolved.history]
    assert states.history(b.instance.fingerprint) == b.history

    reopened = backend.states()  # what the evaluator loads after a restart
    assert {i.fingerprint: i for i in reopened.load_instances()} == loaded


def test_a_retried_save_with_the_same_token_changes_nothing(backend: Backend) -> None:
    states = backend.states()
    first = fired()
    states.save(first.history, [first.instance], "cycle-7")
    states.save(first.history, [first.instance], "cycle-7")  # the retry after a timeout
    later = transition(first.instance, CLEAR, RULE, T0 + timedelta(seconds=5))
    states.save(later.history, [later.instance], "cycle-7")  # same token: still the retry
    fp = first.instance.fingerprint
    assert states.history(fp) == first.history
    assert states.load_instances() == [first.instance]
