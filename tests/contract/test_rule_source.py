"""`RuleStore` and `RuleSource`: the newest version of each rule wins; a deletion keeps the
rule's last definition, so the evaluator can still close its alerts after a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerting.ports import RuleChange
from schemas.alerts import AlertRule
from tests.contract.backends import Backend
from tests.samples.alerting import make_rule

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rule(rule_id: str, **overrides: Any) -> AlertRule:
    return make_rule(rule_id=rule_id, scope={"type": "account"}, **overrides)


def change(rule_id: str, definition: AlertRule | None, version: int) -> RuleChange:
    return RuleChange(rule_id, "acc_main", definition, version, AT)


def by_id(rules: list[tuple[AlertRule, int]]) -> list[tuple[AlertRule, int]]:
    return sorted(rules, key=lambda pair: pair[0].rule_id)


def test_nothing_applied_loads_nothing(backend: Backend) -> None:
    rules = backend.rules()
    assert rules.load_rules() == []
    assert rules.load_deleted_rules() == []


def test_newest_version_wins_and_deletions_keep_the_last_definition(backend: Backend) -> None:
    store = backend.rules()
    first, second = rule("r1", threshold=100), rule("r1", threshold=250)
    store.apply([change("r1", first, 1), change("r1", second, 2)])
    store.apply([change("r1", None, 3)])
    # Created and deleted within one batch; deleted without ever existing.
    store.apply([change("r2", rule("r2"), 4), change("r2", None, 5), change("r3", None, 6)])
    store.apply([change("r4", rule("r4"), 7)])
    # An update that arrives after a newer one changes nothing.
    store.apply([change("r5", rule("r5", threshold=9), 9), change("r5", rule("r5"), 8)])
    # Deleted, then created again.
    store.apply([change("r6", rule("r6"), 10), change("r6", None, 11)])
    store.apply([change("r6", rule("r6", threshold=60), 12)])
    disabled = rule("r7", enabled=False)
    store.apply([change("r7", disabled, 13)])

    expected_current = [
        (rule("r4"), 7),
        (rule("r5", threshold=9), 9),
        (rule("r6", threshold=60), 12),
        (disabled, 13),
    ]
    expected_deleted = [(second, 3), (rule("r2"), 5)]
    assert by_id(store.load_rules()) == expected_current
    assert by_id(store.load_deleted_rules()) == expected_deleted

    reopened = backend.rules()  # what the evaluator loads after a restart
    assert by_id(reopened.load_rules()) == expected_current
    assert by_id(reopened.load_deleted_rules()) == expected_deleted
