"""One evaluation cycle as a pure function: rules, query answers and instances in, effects out.

Contracts of `evaluate(now, rules, answers, instances, closing)`:

- Pure and deterministic: no I/O, no clock; `now` is the evaluation time.
- Every rule in `rules` (the caller passes the enabled ones) is judged on
  `answers[query_key(rule)]` (one answer per (kind, window), see `alerting.planning`),
  for every key it concerns this cycle. A key without an instance gets one only when its
  condition is not clear (instances are created lazily); otherwise
  `alerting.state.transition` advances the existing one.
- Every instance in `closing` (the unsettled instances of deleted rules, with each rule's
  last definition) takes its final step (`alerting.state.close_for_deleted_rule`).
- The result holds, in rule order, every instance that changed (by fingerprint), the
  history entries of the changes and the notify decisions; an instance without history
  entries is not in it. `Evaluation.notifications(names)` turns the decisions into
  `Notification`s, with the key display names looked up by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from alerting.notifications import build_notification
from alerting.planning import QueryAnswer, QueryKey, observe, query_key
from alerting.state import (
    Condition,
    NotifyDecision,
    Transition,
    classify,
    close_for_deleted_rule,
    new_instance,
    transition,
)
from schemas.alerts import AlertHistoryEntry, AlertInstance, AlertRule, Notification

InstancesByRule = Mapping[str, Mapping[str, AlertInstance]]
"""rule_id -> key_id -> the instance's current state."""


@dataclass
class Closing:
    """A deleted rule's last definition and its instances still to close."""

    rule: AlertRule
    instances: list[AlertInstance]


@dataclass
class Evaluation:
    """The effects of one cycle (see the module docstring)."""

    rules: dict[str, AlertRule] = field(default_factory=dict)
    changed: dict[str, AlertInstance] = field(default_factory=dict)
    history: list[AlertHistoryEntry] = field(default_factory=list)
    decisions: list[NotifyDecision] = field(default_factory=list)
    observations: int = 0

    def add(self, fingerprint: str, result: Transition) -> None:
        """Keep one transition's effects when it changed the instance."""
        if result.history:
            self.changed[fingerprint] = result.instance
            self.history.extend(result.history)
            self.decisions.extend(result.decisions)

    @property
    def key_ids(self) -> list[str]:
        """The keys whose display names the notifications need (sorted, distinct)."""
        return sorted({d.key_id for d in self.decisions})

    def notifications(self, names: Mapping[str, str]) -> list[Notification]:
        """One notification per decision; a key without a name in `names` shows its id."""
        return [
            build_notification(d, self.rules[d.rule_id], names.get(d.key_id, d.key_id))
            for d in self.decisions
        ]


def _evaluate_rule(
    out: Evaluation,
    rule: AlertRule,
    answer: QueryAnswer,
    existing: Mapping[str, AlertInstance],
    now: datetime,
) -> None:
    for key_id, obs in observe(rule, answer, existing.keys(), now):
        out.observations += 1
        inst = existing.get(key_id)
        if inst is None:
            if classify(obs, rule) is Condition.CLEAR:
                continue
            inst = new_instance(rule, key_id)
        out.add(inst.fingerprint, transition(inst, obs, rule, now))


def evaluate(
    now: datetime,
    rules: Sequence[AlertRule],
    answers: Mapping[QueryKey, QueryAnswer],
    instances: InstancesByRule,
    closing: Mapping[str, Closing],
) -> Evaluation:
    """Judge every rule and close the deleted rules' instances at `now` (see module doc)."""
    out = Evaluation(rules={rule_id: entry.rule for rule_id, entry in closing.items()})
    out.rules |= {r.rule_id: r for r in rules}
    for rule in rules:
        existing = instances.get(rule.rule_id, {})
        _evaluate_rule(out, rule, answers[query_key(rule)], existing, now)
    for entry in closing.values():
        for inst in entry.instances:
            out.add(inst.fingerprint, close_for_deleted_rule(inst, entry.rule, now))
    return out
