"""The ClickHouse alert store's reads beyond the ports (the CLI's and the HTTP API's).

What the evaluator and the scheduler read through the ports is in tests/contract/.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from alerting.fingerprint import channel_id
from alerting.ports import DeliveryRecord, RuleChange
from projections.alert_store import ClickHouseDeliveryLog, ClickHouseRuleStore
from schemas.alerts import AlertRule, Notification, WebhookChannel
from tests.samples.alerting import SECRET, make_notification, make_rule

pytestmark = pytest.mark.clickhouse

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _change(rule: AlertRule | None, rule_id: str, account: str, version: int) -> RuleChange:
    return RuleChange(rule_id, account, rule, version, AT + timedelta(seconds=version))


def test_rules_listed_per_account_and_read_one_by_one(migrated_client: Client) -> None:
    store = ClickHouseRuleStore(migrated_client)
    main = make_rule(rule_id="r1")
    other = make_rule(rule_id="r2", account_id="acc_other")
    gone = make_rule(rule_id="r3")
    store.apply(
        [
            _change(main, "r1", "acc_main", 1),
            _change(other, "r2", "acc_other", 2),
            _change(gone, "r3", "acc_main", 3),
            _change(None, "r3", "acc_main", 4),
        ]
    )
    assert [s.rule for s in store.list_rules("acc_main")] == [main]
    assert [s.rule.rule_id for s in store.list_rules()] == ["r1", "r2"]
    stored = store.get_rule("r2")
    assert stored is not None
    assert (stored.rule, stored.version, stored.updated_at) == (other, 2, AT + timedelta(seconds=2))
    assert store.get_rule("r3") is None
    assert store.get_rule("r9") is None


def test_deliveries_listed_newest_first_with_every_attempt(migrated_client: Client) -> None:
    hook = WebhookChannel(url="https://hooks.example.com/k", secret=SECRET)
    n = Notification.model_validate(make_notification().model_dump() | {"channels": [hook]})

    def row(did: str, attempt: int, status: str) -> DeliveryRecord:
        at = AT + timedelta(seconds=10 * attempt + (1 if did == "dlv_b" else 0))
        return DeliveryRecord(did, n, 0, channel_id(hook), attempt, at, status)

    log = ClickHouseDeliveryLog(migrated_client)
    log.append([row("dlv_a", 0, "pending"), row("dlv_b", 0, "pending")])
    log.append([row("dlv_a", 1, "retrying"), row("dlv_a", 2, "dead")])

    assert [(r.delivery_id, r.status) for r in log.list_latest()] == [
        ("dlv_a", "dead"),
        ("dlv_b", "pending"),
    ]
    assert [r.delivery_id for r in log.list_latest(statuses=["pending"])] == ["dlv_b"]
    assert [r.delivery_id for r in log.list_latest(limit=1)] == ["dlv_a"]
    assert log.get("dlv_a") == row("dlv_a", 2, "dead")
    assert log.get("dlv_unknown") is None
    assert [r.attempt for r in log.attempts("dlv_a")] == [0, 1, 2]
