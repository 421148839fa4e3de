"""`AttributionStore` over ClickHouse: the (account, key) pairs of landed request events
that the registry does not attribute, from `key_last_used` (the per-pair running count
ingest's views keep, exactly once per event) against `keys`; findings recorded in
`key_anomalies`.

A finding's row has `event_type` `request.completed`, anomaly `unattributed_request` or
`account_mismatch`, `events` the number of request events, `occurred_at` the pair's
newest event time, an `event_id` derived from account, key and reason and `version` =
`events`: the table keeps one row per pair and reason, the largest count (read with
FINAL).
"""

from __future__ import annotations

import uuid

from clickhouse_connect.driver.client import Client

from schemas.utc import from_epoch_ms
from streams.worker.ports import PairTotal, Recorded, UnattributedEvents, UnattributedReason

_NAMESPACE = uuid.UUID("6f1c1f4e-3a53-4c59-9a43-5b7f1e0c2d11")
EVENT_TYPE = "request.completed"
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
_REASONS = {r.anomaly.value: r for r in UnattributedReason}

_UNATTRIBUTED = """
SELECT u.account_id, u.key_id, u.events, toUnixTimestamp64Milli(u.newest), k.owner
FROM (
    SELECT account_id, key_id, sum(requests) AS events, max(last_used) AS newest
    FROM key_last_used GROUP BY account_id, key_id
) AS u
LEFT JOIN (SELECT key_id, any(account_id) AS owner FROM keys GROUP BY key_id) AS k
ON u.key_id = k.key_id
WHERE k.owner IS NULL OR k.owner != u.account_id
"""
"""A key's account never changes (part of the registry's sort key; the fold refuses a
second key.created), so `keys` is read without FINAL."""


def finding_id(account_id: str, key_id: str, reason: UnattributedReason) -> uuid.UUID:
    """The `event_id` of a pair's row for `reason` (the same for every count)."""
    return uuid.uuid5(_NAMESPACE, f"{account_id}|{key_id}|{reason.value}")


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

    def unattributed(self) -> list[PairTotal]:
        rows = self._client.query(_UNATTRIBUTED, settings={"join_use_nulls": 1}).result_rows
        return [
            PairTotal(str(a), str(k), int(n), int(ms), None if o is None else str(o))
            for a, k, n, ms, o in rows
        ]

    def recorded(self) -> Recorded:
        rows = self._client.query(
            "SELECT account_id, key_id, anomaly, events FROM key_anomalies FINAL "
            "WHERE event_type = {type:String} AND anomaly IN {kinds:Array(String)}",
            parameters={"type": EVENT_TYPE, "kinds": sorted(_REASONS)},
        ).result_rows
        return {(str(a), str(k), _REASONS[str(kind)]): int(n) for a, k, kind, n in rows}

    def record(self, findings: list[UnattributedEvents]) -> None:
        if not findings:
            return
        rows = [
            [
                f.account_id,
                f.key_id,
                finding_id(f.account_id, f.key_id, f.reason),
                EVENT_TYPE,
                f.reason.anomaly.value,
                detail(f),
                f.events,
                from_epoch_ms(f.newest_at_ms),
                f.events,
            ]
            for f in findings
        ]
        self._client.insert(
            "key_anomalies", rows, column_names=_COLUMNS, settings={"async_insert": 0}
        )
