"""`AttributionStore` over ClickHouse: key owners from the registry, unattributed request
events recorded in `key_anomalies` (anomaly `unattributed_request` or `account_mismatch`,
`events` the number of request events, `event_type` `request.completed`).

A finding's row is named by a UUID derived from its source block's token, account, key
and reason, so recording it again (a retried insert) replaces the row with itself.
"""

from __future__ import annotations

import uuid

from clickhouse_connect.driver.client import Client

from schemas.utc import from_epoch_ms
from streams.worker.ports import UnattributedEvents, UnattributedReason

_NAMESPACE = uuid.UUID("6f1c1f4e-3a53-4c59-9a43-5b7f1e0c2d11")
_COLUMNS = (
    "account_id",
    "key_id",
    "event_id",
    "event_type",
    "anomaly",
    "detail",
    "events",
    "occurred_at",
    "version",
)


def finding_id(finding: UnattributedEvents) -> uuid.UUID:
    """The row's `event_id`: the same finding always gets the same one."""
    name = f"{finding.source}|{finding.account_id}|{finding.key_id}|{finding.reason.value}"
    return uuid.uuid5(_NAMESPACE, name)


def detail(finding: UnattributedEvents) -> str:
    """What an operator reads in `key_anomalies.detail`."""
    if finding.reason is UnattributedReason.ACCOUNT_MISMATCH:
        return (
            f"{finding.events} request events under {finding.account_id} for a key of "
            f"{finding.owner}; counted in no account's usage"
        )
    return (
        f"{finding.events} request events for a key the registry does not know; "
        "counted in no account's usage"
    )


class ClickHouseAttributionStore:
    """`streams.worker.ports.AttributionStore` over one clickhouse-connect client (one
    thread at a time)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def owners(self, key_ids: list[str]) -> dict[str, str]:
        if not key_ids:
            return {}
        # A key's account never changes (it is part of the registry's sort key and a
        # second key.created is ignored): no FINAL needed.
        rows = self._client.query(
            "SELECT key_id, any(account_id) FROM keys "
            "WHERE key_id IN {ids:Array(String)} GROUP BY key_id",
            parameters={"ids": sorted(set(key_ids))},
        ).result_rows
        return {str(k): str(a) for k, a in rows}

    def record(self, findings: list[UnattributedEvents]) -> None:
        if not findings:
            return
        rows = [
            [
                f.account_id,
                f.key_id,
                finding_id(f),
                "request.completed",
                f.reason.anomaly.value,
                detail(f),
                f.events,
                from_epoch_ms(f.newest_at_ms),
                0,
            ]
            for f in findings
        ]
        self._client.insert(
            "key_anomalies", rows, column_names=_COLUMNS, settings={"async_insert": 0}
        )
