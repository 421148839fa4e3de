"""The read side: usage questions over the rollups, every one scoped by account.

24h reads `usage_minute`; 7d and 30d read whole hours from `usage_hour` and the partial
hours at either end from `usage_minute`, so every window is exact to the minute.
All functions take `now` so callers (and tests) decide the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from projections.windows import Window, WindowPlan, plan_window

HOURS_FROM = timedelta(days=2)

_SUMS = (
    "sum(requests) AS requests, sum(errors_4xx) AS errors_4xx, sum(errors_5xx) AS errors_5xx, "
    "sum(renders) AS renders, sum(bytes_out) AS bytes_out"
)
_PARTIAL = (
    "sum(requests) AS requests, sum(errors_4xx) AS errors_4xx, sum(errors_5xx) AS errors_5xx, "
    "sum(renders) AS renders, sum(bytes_out) AS bytes_out, "
    "quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency) AS latency"
)


@dataclass(frozen=True)
class Usage:
    requests: int
    errors_4xx: int
    errors_5xx: int
    renders: int
    bytes_out: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        """Share of requests that ended in 4xx or 5xx (0.0 when there were none)."""
        if not self.requests:
            return 0.0
        return (self.errors_4xx + self.errors_5xx) / self.requests


EMPTY_USAGE = Usage(0, 0, 0, 0, 0, None, None, None)


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    name: str
    key_type: str
    access: str
    status: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None
    last_used: datetime | None
    requests_24h: int
    requests_7d: int
    requests_30d: int


@dataclass(frozen=True)
class Point:
    at: datetime
    requests: int
    errors_4xx: int
    errors_5xx: int
    p95_ms: float | None


@dataclass(frozen=True)
class AccountUsage:
    window: Window
    total: Usage
    top_keys: list[tuple[str, int]]


@dataclass(frozen=True)
class Freshness:
    newest_event_at: datetime | None
    newest_event_age_s: float | None
    watermarks: dict[int, int]


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _partials_sql(plan: WindowPlan, where: str, group: str) -> tuple[str, dict[str, Any]]:
    """UNION ALL of per-table partial aggregates covering the window."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    for i, (s, e) in enumerate(plan.minute_spans):
        params[f"ms{i}"], params[f"me{i}"] = s, e
        parts.append(
            f"SELECT {group}{_PARTIAL} FROM usage_minute WHERE {where} "
            f"AND minute >= {{ms{i}:DateTime('UTC')}} AND minute < {{me{i}:DateTime('UTC')}}"
            + (f" GROUP BY {group.rstrip(', ')}" if group else "")
        )
    if plan.hour_span:
        params["hs"], params["he"] = plan.hour_span
        parts.append(
            f"SELECT {group}{_PARTIAL} FROM usage_hour WHERE {where} "
            "AND hour >= {hs:DateTime('UTC')} AND hour < {he:DateTime('UTC')}"
            + (f" GROUP BY {group.rstrip(', ')}" if group else "")
        )
    return " UNION ALL ".join(parts), params


def _usage(row: Sequence[Any]) -> Usage:
    requests, e4, e5, renders, bytes_out, quantiles = row
    if not requests:
        return EMPTY_USAGE
    p50, p95, p99 = (float(q) for q in quantiles)
    return Usage(int(requests), int(e4), int(e5), int(renders), int(bytes_out), p50, p95, p99)


class UsageQueries:
    """Read queries over one ClickHouse database (sync; call off the event loop)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def key_usage(self, account_id: str, key_id: str, window: Window, now: datetime) -> Usage:
        plan = plan_window(window.length, _utc(now), HOURS_FROM)
        inner, params = _partials_sql(
            plan, "account_id = {account:String} AND key_id = {key:String}", ""
        )
        params |= {"account": account_id, "key": key_id}
        rows = self._client.query(
            f"SELECT {_SUMS}, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency) FROM ({inner})",
            parameters=params,
        ).result_rows
        return _usage(rows[0]) if rows else EMPTY_USAGE

    def usage_by_key(
        self, account_id: str, window: Window, now: datetime, key_ids: list[str] | None = None
    ) -> dict[str, Usage]:
        """Usage of every key of the account in one query (optionally only `key_ids`)."""
        plan = plan_window(window.length, _utc(now), HOURS_FROM)
        where = "account_id = {account:String}"
        if key_ids is not None:
            where += " AND key_id IN {keys:Array(String)}"
        inner, params = _partials_sql(plan, where, "key_id, ")
        params |= {"account": account_id, "keys": key_ids or []}
        rows = self._client.query(
            f"SELECT key_id, {_SUMS}, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency) "
            f"FROM ({inner}) GROUP BY key_id",
            parameters=params,
        ).result_rows
        return {row[0]: _usage(row[1:]) for row in rows}

    def key_timeseries(
        self, account_id: str, key_id: str, window: Window, step: timedelta, now: datetime
    ) -> list[Point]:
        """Buckets of `step` (a whole number of minutes) across the window, oldest first."""
        step_s = int(step.total_seconds())
        if step_s < 60 or step_s % 60:
            raise ValueError("step must be a whole number of minutes")
        plan = plan_window(window.length, _utc(now), HOURS_FROM)
        use_hours = step_s % 3600 == 0 and plan.hour_span is not None
        table, col = ("usage_hour", "hour") if use_hours else ("usage_minute", "minute")
        rows = self._client.query(
            f"SELECT toStartOfInterval({col}, toIntervalSecond({{step:UInt32}})) AS bucket, "
            "sum(requests), sum(errors_4xx), sum(errors_5xx), "
            "quantilesTDigestMerge(0.5, 0.95, 0.99)(latency)[2] "
            f"FROM {table} WHERE account_id = {{account:String}} AND key_id = {{key:String}} "
            f"AND {col} >= {{start:DateTime('UTC')}} AND {col} < {{end:DateTime('UTC')}} "
            "GROUP BY bucket ORDER BY bucket",
            parameters={
                "step": step_s,
                "account": account_id,
                "key": key_id,
                "start": plan.start,
                "end": plan.end,
            },
        ).result_rows
        return [
            Point(_utc(b), int(r), int(e4), int(e5), float(p95) if r else None)
            for b, r, e4, e5, p95 in rows
        ]

    def list_keys(self, account_id: str, now: datetime) -> list[KeyRow]:
        """The keys page: every key of the account with last use and 24h/7d/30d requests."""
        return self._key_rows(account_id, now, None)

    def get_key(self, account_id: str, key_id: str, now: datetime) -> KeyRow | None:
        """One key of the account (None if it is not this account's or was deleted)."""
        rows = self._key_rows(account_id, now, key_id)
        return rows[0] if rows else None

    def _key_rows(self, account_id: str, now: datetime, key_id: str | None) -> list[KeyRow]:
        only = " AND key_id = {key:String}" if key_id is not None else ""
        keys = self._client.query(
            "SELECT k.key_id, k.name, k.key_type, k.access, k.status, k.plan, k.created_at, "
            "k.revoked_at, l.last_used FROM (SELECT * FROM keys FINAL "
            f"WHERE account_id = {{account:String}} AND status != 'deleted'{only}) AS k "
            "LEFT JOIN (SELECT key_id, max(last_used) AS last_used FROM key_last_used "
            f"WHERE account_id = {{account:String}}{only} GROUP BY key_id) AS l "
            "ON k.key_id = l.key_id ORDER BY k.created_at, k.key_id",
            parameters={"account": account_id, "key": key_id or ""},
            settings={"join_use_nulls": 1},
        ).result_rows
        if not keys:
            return []
        counts = {w: self._requests_by_key(account_id, w, now, key_id) for w in Window}
        return [
            KeyRow(
                key_id=key_id,
                name=name,
                key_type=key_type,
                access=access,
                status=status,
                plan=plan,
                created_at=_utc(created),
                revoked_at=_utc(revoked) if revoked else None,
                last_used=_utc(last) if last else None,
                requests_24h=counts[Window.H24].get(key_id, 0),
                requests_7d=counts[Window.D7].get(key_id, 0),
                requests_30d=counts[Window.D30].get(key_id, 0),
            )
            for key_id, name, key_type, access, status, plan, created, revoked, last in keys
        ]

    def _requests_by_key(
        self, account_id: str, window: Window, now: datetime, key_id: str | None = None
    ) -> dict[str, int]:
        plan = plan_window(window.length, _utc(now), HOURS_FROM)
        only = " AND key_id = {key:String}" if key_id is not None else ""
        parts: list[str] = []
        params: dict[str, Any] = {"account": account_id, "key": key_id or ""}
        for i, (s, e) in enumerate(plan.minute_spans):
            params[f"ms{i}"], params[f"me{i}"] = s, e
            parts.append(
                "SELECT key_id, requests FROM usage_minute WHERE account_id = {account:String} "
                f"AND minute >= {{ms{i}:DateTime('UTC')}} AND minute < {{me{i}:DateTime('UTC')}}"
                + only
            )
        if plan.hour_span:
            params["hs"], params["he"] = plan.hour_span
            parts.append(
                "SELECT key_id, requests FROM usage_hour WHERE account_id = {account:String} "
                "AND hour >= {hs:DateTime('UTC')} AND hour < {he:DateTime('UTC')}" + only
            )
        rows = self._client.query(
            f"SELECT key_id, sum(requests) FROM ({' UNION ALL '.join(parts)}) GROUP BY key_id",
            parameters=params,
        ).result_rows
        return {k: int(n) for k, n in rows}

    def account_usage(
        self, account_id: str, window: Window, now: datetime, top: int = 10
    ) -> AccountUsage:
        per_key = self.usage_by_key(account_id, window, now)
        plan = plan_window(window.length, _utc(now), HOURS_FROM)
        inner, params = _partials_sql(plan, "account_id = {account:String}", "")
        params["account"] = account_id
        rows = self._client.query(
            f"SELECT {_SUMS}, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency) FROM ({inner})",
            parameters=params,
        ).result_rows
        total = _usage(rows[0]) if rows else EMPTY_USAGE
        ranked = sorted(((k, u.requests) for k, u in per_key.items()), key=lambda x: -x[1])
        return AccountUsage(window, total, ranked[:top])

    def freshness(self, topic: str, now: datetime) -> Freshness:
        rows = self._client.query(
            "SELECT max(max_occurred_at), count() FROM ingest_batches "
            "WHERE topic = {topic:String} AND events > 0",
            parameters={"topic": topic},
        ).result_rows
        newest = _utc(rows[0][0]) if rows and rows[0][1] else None
        marks = self._client.query(
            "SELECT p, max(e) FROM ingest_batches ARRAY JOIN partitions AS p, end_offsets AS e "
            "WHERE topic = {topic:String} GROUP BY p",
            parameters={"topic": topic},
        ).result_rows
        age = (_utc(now) - newest).total_seconds() if newest else None
        return Freshness(newest, age, {int(p): int(e) for p, e in marks})
