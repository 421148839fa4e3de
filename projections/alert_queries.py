"""The evaluator's read side: batched window figures per key, the watermark, key names.

`window_stats` answers one `alerting.ports.StatsQuery` in ONE query over `usage_rollup`:
day, hour and minute rows split as in `projections.queries` (exact to the minute),
grouped by (account_id, key_id). Account-wide scopes count only the keys the registry
says the account owns (not deleted), as the account reads of `projections.queries` do:
the registry's keys of those accounts are read once (a small query, which also names the
active keys for `request_count`'s silent ones) and the rollup's rows of other keys are
dropped. An `IN (SELECT ...)` semi-join inside the rollup query costs far more on chDB
than that read (docs/decisions.md). Key scopes read the named key as it is. Every method
is synchronous: call it off the event loop.

`stale_key_presented` is answered by ONE other query (`stale_presented_sql`): the
`revoked` and `expired` verdicts of `verification_outcomes` in the window (rows of that
window only: the table is ordered by account, key and time), summed per key with the
newest time and client IP, LEFT JOINed with the scope's rows of `keys FINAL` for the
evidence (name, revocation time and reason, expiry, replacement). An outcome row's
account is the one the verifier found the key in, so account scopes need no registry
filter; a key missing from the registry still counts, without details.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import StalePresentations, StatsByKey, StatsQuery, WindowStats
from projections.alert_scope import scope_keys, scope_sql
from projections.detector_queries import READERS
from projections.ingest_log import newest_event_time, partition_watermarks
from projections.rollup_sql import TABLE, tier_condition
from projections.windows import plan_nested
from schemas.alerts import RuleKind
from schemas.utc import as_utc


def window_stats_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters answering `query` for the window ending with `now`'s minute."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    params: dict[str, Any] = {}
    where = scope_sql(query, params)
    cols = "account_id, key_id, sum(requests)"
    if query.errors:
        cols += ", sum(errors_4xx + errors_5xx)"
    if query.quantiles:
        cols += ", quantilesTDigestMerge(0.5, 0.95, 0.99)(latency)"
    sql = (
        f"SELECT {cols} FROM {TABLE} WHERE {where} AND ({tier_condition(plan)}) "
        "GROUP BY account_id, key_id"
    )
    return sql, params


_STALE_SQL = """
SELECT o.account_id, o.key_id, o.revoked, o.expired, o.last_at, o.last_ip,
       k.name, k.revoked_at, k.revoke_reason, k.expires_at, k.replaced_by
FROM (
    SELECT account_id, key_id,
           sumIf(count, outcome = 'revoked') AS revoked,
           sumIf(count, outcome = 'expired') AS expired,
           max(occurred_at) AS last_at,
           argMax(client_ip, occurred_at) AS last_ip
    FROM verification_outcomes
    WHERE {scope} AND key_id != '' AND outcome IN ('revoked', 'expired')
      AND occurred_at >= {{start:DateTime64(3, 'UTC')}}
      AND occurred_at < {{end:DateTime64(3, 'UTC')}}
    GROUP BY account_id, key_id
) AS o
LEFT JOIN (
    SELECT account_id, key_id, name, revoked_at, revoke_reason, expires_at, replaced_by
    FROM keys FINAL WHERE {scope}
) AS k ON k.account_id = o.account_id AND k.key_id = o.key_id
SETTINGS join_use_nulls = 1
"""


def stale_presented_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a `stale_key_presented` query: the window that ends with
    `now`'s minute, as the rollup windows (`projections.windows.plan_nested`)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    params: dict[str, Any] = {"start": plan.starts[0], "end": plan.end}
    return _STALE_SQL.format(scope=scope_sql(query, params)), params


def _opt_time(value: Any) -> datetime | None:
    return as_utc(value) if value is not None else None


def _stale_row(row: Sequence[Any]) -> WindowStats:
    _, _, revoked, expired, last_at, last_ip, name, revoked_at, reason, expires, by = row
    stale = StalePresentations(
        revoked=int(revoked),
        expired=int(expired),
        last_at=as_utc(last_at),
        last_ip=str(last_ip),
        name=str(name) if name else None,
        revoked_at=_opt_time(revoked_at),
        revoke_reason=str(reason) if reason else None,
        expires_at=_opt_time(expires),
        replaced_by=str(by) if by else None,
    )
    return WindowStats(stale.presented, stale=stale)


_SILENT = WindowStats(0, 0, None, None, None)
"""An active key with no traffic in the window."""


def _quantile(value: Any) -> float | None:
    q = float(value)
    return q if math.isfinite(q) else None


class ClickHouseEvaluationQueries:
    """`alerting.ports.EvaluationQueries` over one clickhouse-connect client (one thread)."""

    def __init__(self, client: Client, requests_topic: str) -> None:
        self._client = client
        self._topic = requests_topic

    def window_stats(self, query: StatsQuery, now: datetime) -> StatsByKey:
        """Figures per key with traffic in the window (for whole accounts: their registered
        keys only); for `request_count` over whole accounts also every active key without
        any (0 requests), so a rule such as "fewer than 10 requests in 1 h" sees a key
        that went silent or never sent."""
        if not query.accounts and not query.key_pairs:
            return {}
        if query.kind is RuleKind.STALE_KEY_PRESENTED:
            return self._stale(query, now)
        reader = READERS.get(query.kind)
        if reader is not None:
            return reader(self._client, query, now)
        sql, params = window_stats_sql(query, now)
        scope = scope_keys(self._client, query, named_records=False)
        rows = self._client.query(sql, parameters=params).result_rows
        out: StatsByKey = {}
        for row in rows:
            account, key, requests = row[0], row[1], int(row[2])
            if not scope.counts(account, key):
                continue  # not the account's key: counted in no account-wide scope
            errors = int(row[3]) if query.errors else 0
            p50 = p95 = p99 = None
            if query.quantiles and requests:
                p50, p95, p99 = (_quantile(q) for q in row[-1])
            out[(account, key)] = WindowStats(requests, errors, p50, p95, p99)
        if query.kind is RuleKind.REQUEST_COUNT:
            for pair, entry in scope.registered.items():
                if entry.status == "active":
                    out.setdefault(pair, _SILENT)
        return out

    def _stale(self, query: StatsQuery, now: datetime) -> StatsByKey:
        sql, params = stale_presented_sql(query, now)
        rows = self._client.query(sql, parameters=params).result_rows
        return {(str(r[0]), str(r[1])): _stale_row(r) for r in rows}

    def ingest_watermark(self) -> datetime | None:
        return newest_event_time(self._client, self._topic)

    def ingest_offsets(self) -> dict[int, int]:
        return partition_watermarks(self._client, self._topic)

    def key_names(self, key_ids: Sequence[str]) -> dict[str, str]:
        if not key_ids:
            return {}
        rows = self._client.query(
            "SELECT key_id, argMax(name, seq) FROM keys "
            "WHERE key_id IN {ids:Array(String)} GROUP BY key_id",
            parameters={"ids": sorted(set(key_ids))},
        ).result_rows
        return {str(k): str(n) for k, n in rows if n}
