"""The alert instance state machine: one pure function from (state, observation) to effects.

States: normal → pending → firing → (recovering) → resolved, plus explicit nodata and
error. Contracts of `transition`:

- Pure and deterministic: the result depends only on its arguments; `now` is a parameter.
  Calls for one instance must come with non-decreasing `now`.
- A breach in normal/resolved enters pending, or firing at once when `for_s` is 0; a
  pending instance fires once the breach has lasted `for_s`. A pending instance that clears
  returns to normal and notifies nobody.
- Entering firing opens a new episode (`episode` + 1) and yields exactly one FIRING
  decision. While the breach lasts, a REPEAT decision follows every `repeat_interval_s`
  (0: never).
- A clear while firing enters recovering when `keep_firing_for_s` > 0 (a renewed breach
  returns to firing in the same episode, without a notification) and resolves once the
  clear has lasted `keep_firing_for_s`; otherwise it resolves at once. Resolving yields a
  RESOLVED decision only when `send_resolved`, and only for an episode that fired.
- No data (no value, or fewer than `min_requests` requests for a ratio/percentile) enters
  nodata; a misuse detector without enough history enters learning; a failed query
  enters error. None of them notifies. A pending breach is dropped; an
  open episode stays open and is continued (breach) or recovered (clear) once data returns.
- Every state change, and every repeat, yields one `AlertHistoryEntry` carrying the
  instance after it; an unchanged instance is returned as the same value with no entries.

`close_for_deleted_rule` is the last step of an instance whose rule was deleted: an open
episode resolves (a RESOLVED decision when `send_resolved`, as for any resolve), any other
unsettled state returns to normal without notifying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from alerting.fingerprint import fingerprint, idempotency_key
from schemas.alerts import (
    AlertHistoryEntry,
    AlertInstance,
    AlertRule,
    AlertState,
    NotificationKind,
    TransitionReason,
)


class Condition(StrEnum):
    BREACH = "breach"
    CLEAR = "clear"
    NODATA = "nodata"
    LEARNING = "learning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Observation:
    """One evaluation of a rule's window for one key.

    `value` is the measured value (requests, error percentage or latency ms; None when the
    window holds no data), `sample_count` the requests in the window, `error` the reason a
    query failed (which makes the observation an error whatever the value), `evidence`
    the observation in words and numbers for kinds that explain themselves ("" otherwise;
    carried into the history entry and the notification).
    """

    value: float | None
    sample_count: int = 0
    error: str | None = None
    evidence: str = ""
    learning: bool = False
    """A misuse detector without enough history for this key yet: the learning state."""
    breach: bool | None = None
    """A detector's own judgement (several criteria: a z-score and a volume floor, a
    margin over a baseline and a floor); None: compare `value` with the threshold."""


@dataclass(frozen=True, slots=True)
class NotifyDecision:
    """A notification the evaluator must publish (see `alerting.notifications`)."""

    kind: NotificationKind
    idempotency_key: str
    fingerprint: str
    rule_id: str
    account_id: str
    key_id: str
    episode: int
    repeat_n: int
    value: float | None
    started_at: datetime
    ended_at: datetime | None
    at: datetime
    evidence: str = ""


class Transition(NamedTuple):
    """The result of `transition`: the instance after it, decisions and history entries."""

    instance: AlertInstance
    decisions: list[NotifyDecision]
    history: list[AlertHistoryEntry]


def new_instance(rule: AlertRule, key_id: str) -> AlertInstance:
    """A fresh, normal instance of `rule` for `key_id`."""
    return AlertInstance(
        fingerprint=fingerprint(rule.rule_id, key_id),
        rule_id=rule.rule_id,
        account_id=rule.account_id,
        key_id=key_id,
    )


def classify(observation: Observation, rule: AlertRule) -> Condition:
    """Judge one observation against the rule's comparator, threshold and min_requests
    (or take the detector's own judgement, `Observation.breach`)."""
    if observation.error is not None:
        return Condition.ERROR
    if observation.learning:
        return Condition.LEARNING
    value = observation.value
    if value is None or observation.sample_count < rule.effective_min_requests:
        return Condition.NODATA
    if not math.isfinite(value):
        return Condition.ERROR
    if observation.breach is not None:
        return Condition.BREACH if observation.breach else Condition.CLEAR
    return Condition.BREACH if rule.comparator.holds(value, rule.threshold) else Condition.CLEAR


class _Step:
    """Accumulates the effects of one call to `transition`."""

    def __init__(self, inst: AlertInstance, obs: Observation, rule: AlertRule, now: datetime):
        self.inst = inst
        self.obs = obs
        self.rule = rule
        self.now = now
        self.decisions: list[NotifyDecision] = []
        self.history: list[AlertHistoryEntry] = []

    def move(
        self,
        to: AlertState,
        reason: TransitionReason,
        notified: NotificationKind | None = None,
        **updates: Any,
    ) -> None:
        before = self.inst
        since = before.since if to is before.state else self.now
        after = before.model_copy(update={"state": to, "since": since, **updates})
        detail = self.obs.error or self.obs.evidence
        self.history.append(
            AlertHistoryEntry(
                at=self.now,
                from_state=before.state,
                to_state=to,
                reason=reason,
                value=self.obs.value,
                threshold=self.rule.threshold,
                notified=notified,
                detail=detail,
                instance=after,
            )
        )
        self.inst = after

    def decide(
        self,
        kind: NotificationKind,
        *,
        episode: int,
        repeat_n: int,
        started_at: datetime,
        ended_at: datetime | None,
    ) -> None:
        inst = self.inst
        self.decisions.append(
            NotifyDecision(
                kind=kind,
                idempotency_key=idempotency_key(inst.fingerprint, episode, kind, repeat_n),
                fingerprint=inst.fingerprint,
                rule_id=inst.rule_id,
                account_id=inst.account_id,
                key_id=inst.key_id,
                episode=episode,
                repeat_n=repeat_n,
                value=self.obs.value,
                started_at=started_at,
                ended_at=ended_at,
                at=self.now,
                evidence=self.obs.evidence,
            )
        )

    def fire(self, reason: TransitionReason) -> None:
        started = self.inst.started_at or self.now
        episode = self.inst.episode + 1
        self.move(
            AlertState.FIRING,
            reason,
            NotificationKind.FIRING,
            episode=episode,
            started_at=started,
            fired_at=self.now,
            recovering_since=None,
            last_notified_at=self.now,
            repeat_n=0,
        )
        self.decide(
            NotificationKind.FIRING, episode=episode, repeat_n=0, started_at=started, ended_at=None
        )

    def resolve(self, reason: TransitionReason) -> None:
        started = self.inst.started_at or self.inst.fired_at or self.now
        episode = self.inst.episode
        notify = NotificationKind.RESOLVED if self.rule.send_resolved else None
        self.move(
            AlertState.RESOLVED,
            reason,
            notify,
            started_at=None,
            fired_at=None,
            recovering_since=None,
            repeat_n=0,
        )
        if notify is not None:
            self.decide(notify, episode=episode, repeat_n=0, started_at=started, ended_at=self.now)

    def maybe_repeat(self) -> None:
        interval = self.rule.repeat_interval_s
        last = self.inst.last_notified_at
        if interval <= 0 or last is None or _elapsed(last, self.now) < interval:
            return
        n = self.inst.repeat_n + 1
        started = self.inst.started_at or self.now
        self.move(
            AlertState.FIRING,
            TransitionReason.REPEAT,
            NotificationKind.REPEAT,
            last_notified_at=self.now,
            repeat_n=n,
        )
        self.decide(
            NotificationKind.REPEAT,
            episode=self.inst.episode,
            repeat_n=n,
            started_at=started,
            ended_at=None,
        )


def _elapsed(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


def _check_call(instance: AlertInstance, rule: AlertRule, now: datetime | None = None) -> None:
    if instance.rule_id != rule.rule_id:
        raise ValueError(f"instance of rule {instance.rule_id!r} given rule {rule.rule_id!r}")
    if now is None:
        return
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if instance.since is not None and now < instance.since:
        raise ValueError("now precedes the instance's last transition")


_WITHOUT_DATA = {
    Condition.NODATA: (AlertState.NODATA, TransitionReason.NO_DATA),
    Condition.LEARNING: (AlertState.LEARNING, TransitionReason.LEARNING),
    Condition.ERROR: (AlertState.ERROR, TransitionReason.QUERY_ERROR),
}
_DATA_LOST = (AlertState.NODATA, AlertState.LEARNING, AlertState.ERROR)


def _lose_data(step: _Step, cond: Condition) -> None:
    """No value or a failed query: enter nodata/error; an open episode stays open."""
    target, reason = _WITHOUT_DATA[cond]
    inst = step.inst
    if inst.state is not target:
        started = inst.started_at if inst.episode_open else None
        step.move(target, reason, started_at=started, recovering_since=None)


def _clear_open_episode(step: _Step, reason: TransitionReason) -> None:
    """A clear in an open episode: resolve, or recover while `keep_firing_for_s` runs."""
    if step.rule.keep_firing_for_s == 0:
        step.resolve(reason)
    else:
        step.move(AlertState.RECOVERING, reason, recovering_since=step.now)


def _data_returned_to_episode(step: _Step, cond: Condition) -> None:
    if cond is Condition.BREACH:
        step.move(AlertState.FIRING, TransitionReason.DATA_RETURNED)
    else:
        _clear_open_episode(step, TransitionReason.DATA_RETURNED)


def _from_pending(step: _Step, cond: Condition) -> None:
    started = step.inst.started_at
    if cond is Condition.CLEAR:
        step.move(AlertState.NORMAL, TransitionReason.CLEARED, started_at=None)
    elif started is None or _elapsed(started, step.now) >= step.rule.for_s:
        step.fire(TransitionReason.FOR_ELAPSED)


def _from_firing(step: _Step, cond: Condition) -> None:
    if cond is Condition.BREACH:
        step.maybe_repeat()
    else:
        _clear_open_episode(step, TransitionReason.CLEARED)


def _from_recovering(step: _Step, cond: Condition) -> None:
    if cond is Condition.BREACH:
        step.move(AlertState.FIRING, TransitionReason.BREACHED_AGAIN, recovering_since=None)
        return
    since = step.inst.recovering_since or step.now
    if _elapsed(since, step.now) >= step.rule.keep_firing_for_s:
        step.resolve(TransitionReason.KEEP_FIRING_ELAPSED)


def _from_settled(step: _Step, cond: Condition) -> None:
    """Normal, resolved, or nodata/error without an open episode."""
    state = step.inst.state
    returned = state in _DATA_LOST
    if cond is Condition.BREACH:
        if step.rule.for_s == 0:
            step.fire(TransitionReason.BREACHED)
        else:
            reason = TransitionReason.DATA_RETURNED if returned else TransitionReason.BREACHED
            step.move(AlertState.PENDING, reason, started_at=step.now)
    elif state is not AlertState.NORMAL:
        reason = TransitionReason.DATA_RETURNED if returned else TransitionReason.CLEARED
        step.move(AlertState.NORMAL, reason, started_at=None)


_WITH_DATA = {
    AlertState.PENDING: _from_pending,
    AlertState.FIRING: _from_firing,
    AlertState.RECOVERING: _from_recovering,
}


def transition(
    instance: AlertInstance, observation: Observation, rule: AlertRule, now: datetime
) -> Transition:
    """Advance one instance by one observation at `now`; see the module docstring."""
    _check_call(instance, rule, now)
    step = _Step(instance, observation, rule, now)
    cond = classify(observation, rule)
    if cond in _WITHOUT_DATA:
        _lose_data(step, cond)
    elif instance.state in _DATA_LOST and instance.episode_open:
        _data_returned_to_episode(step, cond)
    else:
        _WITH_DATA.get(instance.state, _from_settled)(step, cond)
    return Transition(step.inst, step.decisions, step.history)


def close_for_deleted_rule(instance: AlertInstance, rule: AlertRule, now: datetime) -> Transition:
    """The instance's final transition now that `rule` (its last definition) is deleted."""
    _check_call(instance, rule)
    if instance.since is not None and now < instance.since:
        now = instance.since
    step = _Step(instance, Observation(None), rule, now)
    if instance.episode_open:
        step.resolve(TransitionReason.RULE_DELETED)
    elif instance.state not in (AlertState.NORMAL, AlertState.RESOLVED):
        step.move(AlertState.NORMAL, TransitionReason.RULE_DELETED, started_at=None)
    return Transition(step.inst, step.decisions, step.history)
