"""The rules projection on chDB: current rules, and deleted rules' last definitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from alerting.ports import RuleChange
from projections.alert_store import ClickHouseRuleStore
from schemas.alerts import AlertRule

pytestmark = pytest.mark.clickhouse

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _rule(rule_id: str, **overrides: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": rule_id,
        "account_id": "acc_main",
        "name": f"Rule {rule_id}",
        "scope": {"type": "account"},
        "kind": "request_count",
        "window_s": "1m",
        "threshold": 100,
    }
    return AlertRule.model_validate(data | overrides)


def _change(rule_id: str, rule: AlertRule | None, version: int) -> RuleChange:
    return RuleChange(rule_id, "acc_main", rule, version, AT)


def test_a_deleted_rule_keeps_its_last_definition_for_the_evaluator(
    migrated_client: Client,
) -> None:
    store = ClickHouseRuleStore(migrated_client)
    first, second = _rule("r1", threshold=100), _rule("r1", threshold=250)
    store.apply([_change("r1", first, 1), _change("r1", second, 2)])
    store.apply([_change("r1", None, 3)])
    # Created and deleted within one batch; deleted without ever existing.
    store.apply([_change("r2", _rule("r2"), 4), _change("r2", None, 5), _change("r3", None, 6)])
    store.apply([_change("r4", _rule("r4"), 7)])

    assert store.load_rules() == [(_rule("r4"), 7)]
    assert [s.rule.rule_id for s in store.list_rules("acc_main")] == ["r4"]
    assert store.get_rule("r1") is None
    assert store.load_deleted_rules() == [(second, 3), (_rule("r2"), 5)]
