"""The Alerts page's view model (pure: everything is decided from the reads and `now`).

- A rule's state aggregates its instances (one per key, or per client IP): `firing` when
  any instance is firing or recovering (an open episode), else `pending`, else `error`
  (a failed query), else `learning` when instances are learning and none has been judged
  normal yet, else `normal` (which includes no data and no instance yet, said in `note`).
- History rows are `alert_history` transitions, deliveries the delivery log's latest
  status per delivery; a dead or disabled delivery can be replayed; a test notification
  (`alerting.notification_tests`) is shown as kind `test`.
- `Watch` is what a section waits for after a change the agents apply a moment later
  (a rule added or deleted, a test notification or a replay delivered): while it is not
  there yet and polls are `left`, the section asks again (`Watch.next_query`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from alerting.notification_tests import TEST_NAME_PREFIX, is_test_notification
from alerting.ports import DeliveryRecord, DeliveryStatus
from alerting.render import format_clock
from infra.alert_admin import masked_channel, masked_rule
from infra.console.alert_reads import RuleReads, Transition
from infra.console.alert_words import (
    KIND_LABELS,
    REASONS,
    amount,
    channel_words,
    condition_words,
    scope_words,
)
from schemas.alerts import IP_SUBJECT_PREFIX, AlertInstance, AlertState, RuleKind

MAX_POLLS = 30
"""How often a section asks again for what it waits for (about a second apart)."""

_OPEN = frozenset({AlertState.FIRING, AlertState.RECOVERING})
_JUDGED = frozenset({AlertState.NORMAL, AlertState.RESOLVED})
REPLAYABLE = frozenset({DeliveryStatus.DEAD, DeliveryStatus.DISABLED})


def subject_words(subject: str, key_names: Mapping[str, str]) -> str:
    """A key by name and id, or `IP 203.0.113.9` for an IP subject."""
    if subject.startswith(IP_SUBJECT_PREFIX):
        return f"IP {subject.removeprefix(IP_SUBJECT_PREFIX)}"
    name = key_names.get(subject)
    return f"{name} ({subject})" if name else subject


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleStatus:
    state: str
    note: str = ""


def rule_status(instances: Sequence[AlertInstance]) -> RuleStatus:
    """The state of a rule from its instances' states (see the module docstring)."""
    if not instances:
        return RuleStatus("normal", "no data yet")
    counts = Counter(i.state for i in instances)
    total = len(instances)
    noun = "IPs" if all(i.key_id.startswith(IP_SUBJECT_PREFIX) for i in instances) else "keys"

    def of(n: int, what: str) -> str:
        """ "2 of 3 keys firing" (nothing to add for a rule's only instance)."""
        return "" if total == 1 else f"{n} of {total} {noun} {what}"

    firing = sum(counts[s] for s in _OPEN)
    if firing:
        return RuleStatus("firing", of(firing, "firing"))
    for state in (AlertState.PENDING, AlertState.ERROR):
        if counts[state]:
            return RuleStatus(state.value, of(counts[state], state.value))
    judged = sum(counts[s] for s in _JUDGED)
    learning = counts[AlertState.LEARNING]
    if learning and not judged:
        return RuleStatus("learning", of(learning, "learning"))
    if not judged:
        return RuleStatus("normal", "no data yet")
    return RuleStatus("normal", of(learning, "learning") if learning else "")


@dataclass(frozen=True)
class RuleRow:
    rule_id: str
    name: str
    kind: str
    kind_label: str
    scope: str
    condition: str
    channels: list[str]
    enabled: bool
    status: RuleStatus
    updated: str

    @property
    def testable(self) -> bool:
        return bool(self.channels)


@dataclass(frozen=True)
class Summary:
    rules: int
    firing: int
    pending: int
    learning: int


@dataclass(frozen=True)
class RulesView:
    rows: list[RuleRow]
    summary: Summary


def rules_view(reads: RuleReads, key_names: Mapping[str, str], now: datetime) -> RulesView:
    by_rule: dict[str, list[AlertInstance]] = defaultdict(list)
    for instance in reads.instances:
        by_rule[instance.rule_id].append(instance)
    rows = []
    for stored in sorted(reads.rules, key=lambda s: (s.rule.name.lower(), s.rule.rule_id)):
        rule = stored.rule
        masked = masked_rule(rule)
        rows.append(
            RuleRow(
                rule_id=rule.rule_id,
                name=rule.name,
                kind=rule.kind.value,
                kind_label=KIND_LABELS[rule.kind],
                scope=scope_words(rule, key_names),
                condition=condition_words(rule),
                channels=[channel_words(c) for c in masked.get("channels", [])],
                enabled=rule.enabled,
                status=rule_status(by_rule.get(rule.rule_id, [])),
                updated=format_clock(stored.updated_at, now),
            )
        )
    states = Counter(r.status.state for r in rows)
    summary = Summary(len(rows), states["firing"], states["pending"], states["learning"])
    return RulesView(rows, summary)


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    at_text: str
    rule: str
    subject: str
    from_state: str
    to_state: str
    reason: str
    value: str
    notified: str
    evidence: str


def history_rows(
    transitions: Iterable[Transition],
    rule_names: Mapping[str, tuple[str, RuleKind]],
    key_names: Mapping[str, str],
    now: datetime,
) -> list[HistoryRow]:
    """`rule_names`: rule id -> (name, kind) of the rules still defined (a deleted
    rule's transitions show its id and plain numbers)."""
    rows = []
    for t in transitions:
        name, kind = rule_names.get(t.rule_id, (t.rule_id, RuleKind.REQUEST_COUNT))
        value = amount(kind, t.value) if t.rule_id in rule_names else _plain(t.value)
        rows.append(
            HistoryRow(
                at=t.at,
                at_text=format_clock(t.at, now),
                rule=name,
                subject=subject_words(t.key_id, key_names),
                from_state=t.from_state.value,
                to_state=t.to_state.value,
                reason=REASONS.get(t.reason, t.reason.value),
                value=value,
                notified=t.notified.value if t.notified else "",
                evidence=t.detail,
            )
        )
    return rows


def _plain(value: float | None) -> str:
    return "no data" if value is None else f"{value:g}"


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DeliveryRow:
    delivery_id: str
    at: datetime
    at_text: str
    status: str
    rule: str
    subject: str
    kind: str
    channel: str
    attempt: int
    detail: str

    @property
    def replayable(self) -> bool:
        return self.status in REPLAYABLE


@dataclass(frozen=True)
class DeliveriesView:
    rows: list[DeliveryRow]
    counts: dict[str, int]


def deliveries_view(
    records: Iterable[DeliveryRecord], key_names: Mapping[str, str], now: datetime
) -> DeliveriesView:
    rows = []
    for r in records:
        n = r.notification
        test = is_test_notification(n.idempotency_key)
        channel = n.channels[r.channel_index] if r.channel_index < len(n.channels) else None
        rows.append(
            DeliveryRow(
                delivery_id=r.delivery_id,
                at=r.at,
                at_text=format_clock(r.at, now),
                status=r.status,
                rule=n.rule.name.removeprefix(TEST_NAME_PREFIX) if test else n.rule.name,
                subject="" if test else subject_words(n.key_id, key_names),
                kind="test" if test else n.state.value,
                channel=channel_words(
                    masked_channel(channel.model_dump(mode="json")), secrets=False
                )
                if channel
                else r.channel_id,
                attempt=r.attempt,
                detail=r.detail,
            )
        )
    counts = Counter(row.status for row in rows)
    return DeliveriesView(rows, {s: counts[s] for s in DeliveryStatus.ALL if counts[s]})


# --------------------------------------------------------------------------- waiting


@dataclass(frozen=True)
class Watch:
    """What a section waits for (all empty: nothing), and the polls left."""

    rule: str = ""
    """A rule just added: until the list shows it."""
    gone: str = ""
    """A rule just deleted: until the list no longer shows it."""
    notice: str = ""
    """A test notification's idempotency key: until its deliveries are settled."""
    replay: str = ""
    """A replayed delivery: until an attempt after `after` is settled."""
    after: int = 0
    left: int = 0

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Watch:
        def number(name: str, top: int) -> int:
            text = query.get(name, "")
            return min(max(int(text), 0), top) if text.isdigit() else 0

        return cls(
            rule=query.get("rule", "")[:80],
            gone=query.get("gone", "")[:80],
            notice=query.get("notice", "")[:200],
            replay=query.get("replay", "")[:80],
            after=number("after", 1_000_000),
            left=number("left", MAX_POLLS),
        )

    def rules_waiting(self, rule_ids: set[str]) -> bool:
        if self.left <= 0:
            return False
        return bool(self.rule and self.rule not in rule_ids) or bool(
            self.gone and self.gone in rule_ids
        )

    def deliveries_waiting(self, records: Sequence[DeliveryRecord]) -> bool:
        if self.left <= 0:
            return False
        if self.notice:
            mine = [r for r in records if r.notification.idempotency_key == self.notice]
            if not mine or any(r.status in DeliveryStatus.OPEN for r in mine):
                return True
        if self.replay:
            found = next((r for r in records if r.delivery_id == self.replay), None)
            if found is None or found.attempt <= self.after or found.status in DeliveryStatus.OPEN:
                return True
        return False

    def query(self) -> str:
        """This watch as a query string (`Watch.of` reads it back)."""
        fields = {
            "rule": self.rule,
            "gone": self.gone,
            "notice": self.notice,
            "replay": self.replay,
            "after": str(self.after) if self.replay else "",
            "left": str(self.left),
        }
        return urlencode({k: v for k, v in fields.items() if v})

    def next(self) -> Watch:
        """The watch of the next poll: one fewer left."""
        return replace(self, left=max(self.left - 1, 0))

    def starting(self) -> Watch:
        """The watch right after the change: every poll left."""
        return replace(self, left=MAX_POLLS)
