"""What the Alerts page reads from ClickHouse, for one account (each function takes the
client of one `ClientPool.with_client` call):

- `RuleReads`: the account's current rules (`alert_rules`) and the latest state of
  their instances (`alert_instances`), through `projections.alert_store`;
- `recent_transitions`: the newest rows of `alert_history` (every state change of every
  instance, with the evidence or error in `detail`); the store reads the history of one
  fingerprint only, so this query lives here;
- `recent_deliveries`: the delivery log by latest status (`ClickHouseDeliveryLog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import DeliveryRecord
from projections.alert_store import (
    ClickHouseAlertStateStore,
    ClickHouseDeliveryLog,
    ClickHouseRuleStore,
    StoredRule,
)
from schemas.alerts import AlertInstance, AlertState, NotificationKind, TransitionReason
from schemas.utc import as_utc

INSTANCE_LIMIT = 2_000
HISTORY_LIMIT = 50
DELIVERY_LIMIT = 50


@dataclass(frozen=True)
class Transition:
    """One `alert_history` row: an instance's state change (or a repeat)."""

    at: datetime
    rule_id: str
    key_id: str
    from_state: AlertState
    to_state: AlertState
    reason: TransitionReason
    value: float | None
    threshold: float
    notified: NotificationKind | None
    episode: int
    detail: str


@dataclass(frozen=True)
class RuleReads:
    rules: list[StoredRule]
    instances: list[AlertInstance] = field(default_factory=list)


@dataclass(frozen=True)
class AlertReads:
    rules: RuleReads
    history: list[Transition]
    deliveries: list[DeliveryRecord]


def read_rules(client: Client, account_id: str) -> RuleReads:
    rules = ClickHouseRuleStore(client).list_rules(account_id)
    instances = ClickHouseAlertStateStore(client).list_instances(account_id, INSTANCE_LIMIT)
    return RuleReads(rules, instances)


def own_rule(client: Client, account_id: str, rule_id: str) -> StoredRule | None:
    """The account's rule `rule_id` (None: no such rule, or another account's)."""
    stored = ClickHouseRuleStore(client).get_rule(rule_id)
    return stored if stored is not None and stored.rule.account_id == account_id else None


def recent_transitions(
    client: Client, account_id: str, limit: int = HISTORY_LIMIT
) -> list[Transition]:
    """The account's newest transitions, newest first."""
    rows = client.query(
        "SELECT at, rule_id, key_id, from_state, to_state, reason, value, threshold, "
        "notified, episode, detail FROM alert_history WHERE account_id = {account:String} "
        "ORDER BY at DESC, seq DESC LIMIT {limit:UInt32}",
        parameters={"account": account_id, "limit": limit},
    ).result_rows
    return [_transition(row) for row in rows]


def _transition(row: Sequence[Any]) -> Transition:
    at, rule_id, key_id, from_state, to_state, reason, value, threshold, notified, ep, detail = row
    return Transition(
        at=as_utc(at),
        rule_id=str(rule_id),
        key_id=str(key_id),
        from_state=AlertState(from_state),
        to_state=AlertState(to_state),
        reason=TransitionReason(reason),
        value=None if value is None else float(value),
        threshold=float(threshold),
        notified=NotificationKind(notified) if notified else None,
        episode=int(ep),
        detail=str(detail),
    )


def recent_deliveries(
    client: Client, account_id: str, limit: int = DELIVERY_LIMIT
) -> list[DeliveryRecord]:
    return ClickHouseDeliveryLog(client).list_latest(None, limit, account_id)


def own_delivery(client: Client, account_id: str, delivery_id: str) -> DeliveryRecord | None:
    record = ClickHouseDeliveryLog(client).get(delivery_id)
    return record if record is not None and record.notification.account_id == account_id else None


def read_alerts(client: Client, account_id: str) -> AlertReads:
    return AlertReads(
        read_rules(client, account_id),
        recent_transitions(client, account_id),
        recent_deliveries(client, account_id),
    )
