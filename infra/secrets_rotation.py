"""Rotating the master key of channel secrets: what `keypulse secrets …` does, without typer.

The rules are read from the alert-rules topic itself (every record, folded to the latest
definition per rule; it is the source of truth and can be read while a worker holds
chDB). `rotate` makes a new master key current (written to the keyring file first, so
every process picks it up), then publishes, through the normal rule publisher, an update
of every rule whose channel secrets are not all sealed under it (rewrapped: only the
wrapped data key changes; a plaintext secret left from before sealing is sealed). A rule
that changed while it was being rewrapped (its event lies between the snapshot and the
update) is published again in its newest definition, so no edit is lost. Once `usage`
shows no rule under an old key, `retire` removes that key from the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from alerting.channel_secrets import SealCounts, kids_of, needs_sealing
from alerting.sealing import Keyring, new_master_key
from infra.alert_admin import Published, Publisher
from infra.master_keys import (
    ENV_KEY,
    NOT_CONFIGURED,
    KeyringLocation,
    MasterKeyError,
    keyring_location,
    load_keyring,
    write_keyring,
)
from infra.settings import Settings
from schemas.alerts import AlertRule, AlertRuleDeleted
from schemas.codec import decode_rule_event
from schemas.errors import InvalidMessage
from streams.worker.kafka_ranges import read_ranges, topic_ranges
from streams.worker.ports import OffsetRange

Record = tuple[int, int, bytes]
"""(partition, offset, value) of an alert-rules record."""


@dataclass(frozen=True)
class RuleSnapshot:
    """The current rules (deleted ones left out) and the topic's end offset per partition."""

    rules: dict[str, AlertRule]
    ends: dict[int, int]
    unreadable: int = 0


def fold_rules(
    events: Iterable[Record],
) -> tuple[dict[str, tuple[AlertRule | None, tuple[int, int]]], int]:
    """The latest event per rule id of (partition, offset, value) records: the rule (None
    for a deletion) and where it is; plus how many records did not decode."""
    latest: dict[str, tuple[AlertRule | None, tuple[int, int]]] = {}
    unreadable = 0
    for partition, offset, value in sorted(events, key=lambda e: (e[0], e[1])):
        try:
            event = decode_rule_event(value)
        except InvalidMessage:
            unreadable += 1
            continue
        if isinstance(event, AlertRuleDeleted):
            latest[event.rule_id] = (None, (partition, offset))
        else:
            latest[event.rule.rule_id] = (event.rule, (partition, offset))
    return latest, unreadable


def _read(
    settings: Settings, topic: str, ranges: list[OffsetRange]
) -> list[tuple[int, int, bytes]]:
    records = read_ranges(settings.kafka.bootstrap_servers, topic, ranges, idle_timeout_s=30.0)
    return [(r.partition, r.offset, r.value) for r in records]


def read_rules(settings: Settings, topic: str) -> RuleSnapshot:
    ranges = topic_ranges(settings.kafka.bootstrap_servers, topic)
    latest, unreadable = fold_rules(_read(settings, topic, ranges))
    rules = {rid: rule for rid, (rule, _) in latest.items() if rule is not None}
    return RuleSnapshot(rules, {r.partition: r.end + 1 for r in ranges}, unreadable)


def usage(rules: Iterable[AlertRule]) -> Counter[str]:
    """Rules per master key id (a rule counts once per key its secrets use; "plaintext"
    for a rule with a secret not sealed yet)."""
    counts: Counter[str] = Counter()
    for rule in rules:
        for kid in kids_of(rule.channels):
            counts[kid] += 1
        if needs_sealing(rule.channels):
            counts["plaintext"] += 1
    return counts


@dataclass
class RotationReport:
    kid: str
    """The current master key after the rotation."""
    new_key: bool
    rules: int = 0
    """Current rules read from the topic."""
    with_secrets: int = 0
    republished: int = 0
    """Rule updates published (rewrapped or sealed)."""
    concurrent: int = 0
    """Rules changed by someone else during the rotation, published again in their newest form."""
    counts: SealCounts = field(default_factory=SealCounts)
    remaining: dict[str, int] = field(default_factory=dict)
    """Rules per master key id after the rotation (the rules this run read)."""


def _file(where: KeyringLocation | None) -> KeyringLocation:
    if where is None:
        raise MasterKeyError(NOT_CONFIGURED)
    if where.from_env:
        raise MasterKeyError(
            f"the keyring comes from {ENV_KEY}, which keypulse cannot rewrite: put the new "
            "entry 'kid:<base64>' first in it (keep the old ones after it) in every process, "
            "restart them, then run `keypulse secrets rotate-master --rewrap-only`"
        )
    return where


def add_current_key(settings: Settings, new: tuple[str, bytes] | None = None) -> Keyring:
    """Put a new master key (generated unless given) first in the keyring file."""
    where = _file(keyring_location(settings))
    keyring = load_keyring(settings)
    assert keyring is not None and where.path is not None
    kid, key = new or new_master_key()
    if kid in keyring.kids:
        raise MasterKeyError(f"{where.path} already holds master key {kid!r}")
    updated = keyring.with_current(kid, key)
    write_keyring(where.path, updated)
    return updated


def rotate(
    settings: Settings,
    publisher: Publisher,
    *,
    new_key: bool = True,
    key: tuple[str, bytes] | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RotationReport:
    """Make a new master key current (unless `new_key` is False), then rewrap every rule's
    channel secrets under the current key by publishing rule updates (module docstring)."""
    keyring = add_current_key(settings, key) if new_key else publisher.keyring.require()
    current = publisher.keyring.require()
    if current.current_kid != keyring.current_kid:
        raise MasterKeyError(f"the keyring changed during the rotation (now {current.kids})")
    topic = publisher.topics.alert_rules
    snapshot = read_rules(settings, topic)
    report = RotationReport(keyring.current_kid, new_key, rules=len(snapshot.rules))
    todo = [r for r in snapshot.rules.values() if kids_of(r.channels) or needs_sealing(r.channels)]
    report.with_secrets = len(todo)
    ours: dict[str, Published] = {}
    for i, rule in enumerate(todo, 1):
        sealed, counts = publisher.seal_counts(rule, rewrap_old=True)
        report.counts.add(counts)
        if sealed != rule:
            ours[rule.rule_id] = publisher.rule(sealed, replace=True)
            report.republished += 1
        progress(i, len(todo))
    report.concurrent = _republish_concurrent(settings, publisher, snapshot, ours)
    after = read_rules(settings, topic)
    report.remaining = dict(usage(after.rules.values()))
    return report


def _republish_concurrent(
    settings: Settings, publisher: Publisher, snapshot: RuleSnapshot, ours: dict[str, Published]
) -> int:
    """Publish again the newest definition of each rule another writer changed between
    the snapshot and our update of it (ours would otherwise replace that change)."""
    if not ours:
        return 0
    topic = publisher.topics.alert_rules
    ends = {p.partition: p.offset for p in ours.values()}
    ranges = [
        OffsetRange(p, snapshot.ends.get(p, 0), end - 1)
        for p, end in ends.items()
        if end > snapshot.ends.get(p, 0)
    ]
    if not ranges:
        return 0
    latest, _ = fold_rules(_read(settings, topic, ranges))
    again = 0
    for rule_id, (rule, (_, offset)) in latest.items():
        mine = ours.get(rule_id)
        if mine is None or offset >= mine.offset:
            continue
        if rule is None:
            publisher.rule_deletion(rule_id, snapshot.rules[rule_id].account_id)
        else:
            publisher.rule(publisher.sealed(rule, rewrap_old=True), replace=True)
        again += 1
    return again


def retire(settings: Settings, topic: str, kid: str) -> Keyring:
    """Remove master key `kid` from the keyring file, once no current rule uses it."""
    where = _file(keyring_location(settings))
    keyring = load_keyring(settings)
    assert keyring is not None and where.path is not None
    if kid not in keyring.kids:
        raise MasterKeyError(f"{where.path} holds no master key {kid!r} (it holds {keyring.kids})")
    if kid == keyring.current_kid:
        raise MasterKeyError(
            f"{kid!r} is the current master key; rotate first (`keypulse secrets rotate-master`)"
        )
    left = usage(read_rules(settings, topic).rules.values()).get(kid, 0)
    if left:
        raise MasterKeyError(
            f"{left} rule(s) still use master key {kid!r}; run `keypulse secrets rotate-master "
            "--rewrap-only` and wait until the updates are published"
        )
    updated = keyring.without(kid)
    write_keyring(where.path, updated)
    return updated
