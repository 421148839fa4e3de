"""ClickHouse adapters for alerting's ports: rules, instance state and history, deliveries.

Each class wraps one clickhouse-connect client and is not thread-safe (one executor
thread per client). Current values are read with `argMax(..., version|seq)` per id,
which does not depend on background merges. Inserts are synchronous (`async_insert=0`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import (
    DeliveryLookup,
    DeliveryRecord,
    DeliveryStatus,
    DisabledEndpoint,
    RuleChange,
)
from projections.counters import GrowingCounter
from schemas.alerts import AlertHistoryEntry, AlertInstance, AlertRule, Notification
from schemas.utc import as_utc, utc_now

SYNC = {"async_insert": 0}


def _opt_utc(t: datetime | None) -> datetime | None:
    return None if t is None else as_utc(t)


# --------------------------------------------------------------------------- rules

_RULE_COLS = (
    "rule_id",
    "account_id",
    "name",
    "kind",
    "window_s",
    "key_id",
    "enabled",
    "deleted",
    "rule",
    "updated_at",
    "version",
)

_CURRENT_RULES = (
    "SELECT rule_id, argMax(rule, version) AS r_rule, argMax(deleted, version) AS r_deleted, "
    "max(version) AS r_version, argMax(account_id, version) AS r_account, "
    "argMax(updated_at, version) AS r_updated FROM alert_rules {where} GROUP BY rule_id"
)


@dataclass(frozen=True)
class StoredRule:
    rule: AlertRule
    version: int
    updated_at: datetime


class ClickHouseRuleStore:
    """`RuleStore` and `RuleSource` over `alert_rules`, plus the CLI's reads."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def apply(self, changes: Sequence[RuleChange]) -> None:
        """Append one row per change; a deletion row keeps the rule's last definition in
        `rule` (so the evaluator can still resolve its open alerts after a restart)."""
        last = self._definitions([c.rule_id for c in changes if c.rule is None])
        rows: list[list[Any]] = []
        for c in changes:
            rule = c.rule
            if rule is not None:
                last[c.rule_id] = rule.model_dump_json()
            rows.append(
                [
                    c.rule_id,
                    c.account_id,
                    rule.name if rule else "",
                    rule.kind.value if rule else "",
                    rule.window_s if rule else 0,
                    (rule.key_id or "") if rule else "",
                    rule.enabled if rule else False,
                    rule is None,
                    rule.model_dump_json() if rule else last.get(c.rule_id, ""),
                    c.at,
                    c.version,
                ]
            )
        if rows:
            self._client.insert("alert_rules", rows, column_names=_RULE_COLS, settings=SYNC)

    def _current(self, where: str = "", params: dict[str, Any] | None = None) -> list[StoredRule]:
        rows = self._client.query(
            f"SELECT r_rule, r_version, r_updated FROM ({_CURRENT_RULES.format(where=where)}) "
            "WHERE NOT r_deleted ORDER BY r_account, rule_id",
            parameters=params or {},
        ).result_rows
        return [StoredRule(AlertRule.model_validate_json(r), int(v), as_utc(u)) for r, v, u in rows]

    def _definitions(self, rule_ids: list[str]) -> dict[str, str]:
        """The newest stored definition (JSON) of each of `rule_ids` that has one."""
        if not rule_ids:
            return {}
        rows = self._client.query(
            "SELECT rule_id, argMax(rule, version) FROM alert_rules "
            "WHERE rule_id IN {ids:Array(String)} AND rule != '' GROUP BY rule_id",
            parameters={"ids": sorted(set(rule_ids))},
        ).result_rows
        return {str(r): str(d) for r, d in rows}

    def load_rules(self) -> list[tuple[AlertRule, int]]:
        return [(s.rule, s.version) for s in self._current()]

    def load_deleted_rules(self) -> list[tuple[AlertRule, int]]:
        rows = self._client.query(
            f"SELECT r_rule, r_version FROM ({_CURRENT_RULES.format(where='')}) "
            "WHERE r_deleted AND r_rule != '' ORDER BY rule_id"
        ).result_rows
        return [(AlertRule.model_validate_json(r), int(v)) for r, v in rows]

    def list_rules(self, account_id: str | None = None) -> list[StoredRule]:
        if account_id is None:
            return self._current()
        return self._current("WHERE account_id = {account:String}", {"account": account_id})

    def get_rule(self, rule_id: str) -> StoredRule | None:
        found = self._current("WHERE rule_id = {rule:String}", {"rule": rule_id})
        return found[0] if found else None


# --------------------------------------------------------------------------- state

_HISTORY_COLS = (
    "at",
    "seq",
    "fingerprint",
    "rule_id",
    "account_id",
    "key_id",
    "from_state",
    "to_state",
    "reason",
    "value",
    "threshold",
    "notified",
    "episode",
    "detail",
    "instance",
)
_INSTANCE_COLS = (
    "fingerprint",
    "rule_id",
    "account_id",
    "key_id",
    "state",
    "instance",
    "updated_at",
    "version",
)


class ClickHouseAlertStateStore:
    """`AlertStateStore` over `alert_history` (append) and `alert_instances` (latest).

    `alert_history.seq` and `alert_instances.version` come from one `GrowingCounter`
    (never the wall clock), so the newest saved state wins after a clock step back.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._order = GrowingCounter(
            client, ("alert_instances", "version"), ("alert_history", "seq")
        )

    def load_instances(self) -> list[AlertInstance]:
        rows = self._client.query(
            "SELECT argMax(instance, version) AS i FROM alert_instances GROUP BY fingerprint"
        ).result_rows
        return [AlertInstance.model_validate_json(r[0]) for r in rows]

    def list_instances(self, account_id: str, limit: int) -> list[AlertInstance]:
        """The latest state of one account's instances, most recently changed first,
        at most `limit` of them."""
        rows = self._client.query(
            "SELECT argMax(instance, version) AS i FROM alert_instances "
            "WHERE account_id = {account:String} GROUP BY fingerprint "
            "ORDER BY max(version) DESC, fingerprint LIMIT {limit:UInt32}",
            parameters={"account": account_id, "limit": limit},
        ).result_rows
        return [AlertInstance.model_validate_json(r[0]) for r in rows]

    def save(
        self, history: Sequence[AlertHistoryEntry], instances: Sequence[AlertInstance], token: str
    ) -> None:
        if history:
            rows = []
            for h in history:
                inst = h.instance
                rows.append(
                    [
                        h.at,
                        self._order.next(),
                        inst.fingerprint,
                        inst.rule_id,
                        inst.account_id,
                        inst.key_id,
                        h.from_state.value,
                        h.to_state.value,
                        h.reason.value,
                        h.value,
                        h.threshold,
                        h.notified.value if h.notified else "",
                        inst.episode,
                        h.detail,
                        inst.model_dump_json(),
                    ]
                )
            self._client.insert(
                "alert_history",
                rows,
                column_names=_HISTORY_COLS,
                settings={**SYNC, "insert_deduplication_token": f"{token}-h"},
            )
        if instances:
            now = utc_now()
            version = self._order.next()
            self._client.insert(
                "alert_instances",
                [
                    [
                        i.fingerprint,
                        i.rule_id,
                        i.account_id,
                        i.key_id,
                        i.state.value,
                        i.model_dump_json(),
                        now,
                        version,
                    ]
                    for i in instances
                ],
                column_names=_INSTANCE_COLS,
                settings={**SYNC, "insert_deduplication_token": f"{token}-i"},
            )

    def history(self, fingerprint: str) -> list[AlertHistoryEntry]:
        """Every transition of one instance, oldest first (tests and tools)."""
        rows = self._client.query(
            "SELECT at, from_state, to_state, reason, value, threshold, notified, detail, "
            "instance FROM alert_history WHERE fingerprint = {fp:String} ORDER BY at, seq",
            parameters={"fp": fingerprint},
        ).result_rows
        return [
            AlertHistoryEntry(
                at=as_utc(at),
                from_state=fs,
                to_state=ts,
                reason=reason,
                value=value,
                threshold=threshold,
                notified=notified or None,
                detail=detail,
                instance=AlertInstance.model_validate_json(inst),
            )
            for at, fs, ts, reason, value, threshold, notified, detail, inst in rows
        ]


# --------------------------------------------------------------------------- deliveries

_DELIVERY_COLS = (
    "delivery_id",
    "seq",
    "idempotency_key",
    "fingerprint",
    "account_id",
    "rule_id",
    "key_id",
    "kind",
    "channel_id",
    "channel_type",
    "channel_index",
    "attempt",
    "round_offset",
    "at",
    "status",
    "outcome",
    "detail",
    "next_attempt_at",
    "first_attempt_at",
    "replay",
    "notification",
)
_READ_COLS = (
    "delivery_id, channel_index, channel_id, attempt, at, status, outcome, detail, "
    "next_attempt_at, first_attempt_at, round_offset, replay, notification"
)
_LATEST = (
    "(delivery_id, seq) IN "
    "(SELECT delivery_id, max(seq) FROM deliveries {where} GROUP BY delivery_id)"
)


def _record(row: Sequence[Any]) -> DeliveryRecord:
    did, index, cid, attempt, at, status, outcome, detail, nxt, first, offset, replay, n = row
    return DeliveryRecord(
        delivery_id=did,
        notification=Notification.model_validate_json(n),
        channel_index=int(index),
        channel_id=cid,
        attempt=int(attempt),
        at=as_utc(at),
        status=status,
        outcome=outcome,
        detail=detail,
        next_attempt_at=_opt_utc(nxt),
        first_attempt_at=_opt_utc(first),
        round_offset=int(offset),
        replay=bool(replay),
    )


class ClickHouseDeliveryLog:
    """`DeliveryLog` over `deliveries` and `disabled_endpoints`, plus the CLI's reads.

    `deliveries.seq` and `disabled_endpoints.version` come from one `GrowingCounter`
    (never the wall clock), so a delivery's newest row wins after a clock step back.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._order = GrowingCounter(
            client, ("deliveries", "seq"), ("disabled_endpoints", "version")
        )

    def _seq(self) -> int:
        return self._order.next()

    def append(self, records: Sequence[DeliveryRecord]) -> None:
        rows = []
        for r in records:
            n = r.notification
            rows.append(
                [
                    r.delivery_id,
                    self._seq(),
                    n.idempotency_key,
                    n.fingerprint,
                    n.account_id,
                    n.rule.rule_id,
                    n.key_id,
                    n.state.value,
                    r.channel_id,
                    n.channels[r.channel_index].type,
                    r.channel_index,
                    r.attempt,
                    r.round_offset,
                    r.at,
                    r.status,
                    r.outcome,
                    r.detail,
                    r.next_attempt_at,
                    r.first_attempt_at,
                    r.replay,
                    n.model_dump_json(),
                ]
            )
        if rows:
            self._client.insert("deliveries", rows, column_names=_DELIVERY_COLS, settings=SYNC)

    def latest(self, delivery_ids: Sequence[str]) -> DeliveryLookup:
        lookup = DeliveryLookup()
        if not delivery_ids:
            return lookup
        rows = self._client.query(
            "SELECT delivery_id, argMax(status, seq), argMax(attempt, seq) FROM deliveries "
            "WHERE delivery_id IN {ids:Array(String)} GROUP BY delivery_id",
            parameters={"ids": sorted(set(delivery_ids))},
        ).result_rows
        for did, status, attempt in rows:
            lookup.status[did] = status
            lookup.attempts[did] = int(attempt)
        return lookup

    def open_deliveries(self) -> list[DeliveryRecord]:
        return self.list_latest(statuses=sorted(DeliveryStatus.OPEN), limit=None)

    def list_latest(
        self,
        statuses: Sequence[str] | None = None,
        limit: int | None = 100,
        account_id: str | None = None,
    ) -> list[DeliveryRecord]:
        """The newest row of each delivery, newest first, optionally only some statuses
        and only one account's deliveries."""
        params: dict[str, Any] = {}
        latest = _LATEST.format(where="")
        where = ""
        if account_id is not None:
            params["account"] = account_id
            latest = _LATEST.format(where="WHERE account_id = {account:String}")
            where += " AND account_id = {account:String}"
        if statuses:
            params["statuses"] = list(statuses)
            where += " AND status IN {statuses:Array(String)}"
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self._client.query(
            f"SELECT {_READ_COLS} FROM deliveries WHERE {latest}{where} "
            f"ORDER BY at DESC, delivery_id{tail}",
            parameters=params,
        ).result_rows
        return [_record(r) for r in rows]

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        """The newest row of one delivery."""
        rows = self._client.query(
            f"SELECT {_READ_COLS} FROM deliveries WHERE delivery_id = {{id:String}} "
            "ORDER BY seq DESC LIMIT 1",
            parameters={"id": delivery_id},
        ).result_rows
        return _record(rows[0]) if rows else None

    def attempts(self, delivery_id: str) -> list[DeliveryRecord]:
        """Every row of one delivery, oldest first."""
        rows = self._client.query(
            f"SELECT {_READ_COLS} FROM deliveries WHERE delivery_id = {{id:String}} ORDER BY seq",
            parameters={"id": delivery_id},
        ).result_rows
        return [_record(r) for r in rows]

    def disabled_endpoints(self) -> set[str]:
        rows = self._client.query(
            "SELECT channel_id FROM (SELECT channel_id, argMax(disabled, version) AS off "
            "FROM disabled_endpoints GROUP BY channel_id) WHERE off"
        ).result_rows
        return {str(r[0]) for r in rows}

    def set_endpoint(self, endpoint: DisabledEndpoint) -> None:
        self._client.insert(
            "disabled_endpoints",
            [
                [
                    endpoint.channel_id,
                    endpoint.channel_type,
                    endpoint.disabled,
                    endpoint.reason,
                    endpoint.at,
                    self._seq(),
                ]
            ],
            column_names=("channel_id", "channel_type", "disabled", "reason", "at", "version"),
            settings=SYNC,
        )
