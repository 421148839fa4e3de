"""The read side: usage questions over the rollups, every one scoped by account.

Everything reads `usage_rollup`, where each key's minute, hour and day rows sit side by
side. Usage windows are exact to the minute: whole days from day rows, the whole hours
around them from hour rows and the partial hours at either end from minute rows
(`plan_nested`), so a key's 30 days are some 30 day rows, ~46 hour rows and ~120 minute
rows, read in ONE single-table query (each extra SELECT of a query costs a fixed
planning time on chDB: docs/decisions.md). Several windows are answered in one pass (`key_summary`,
the key listing). All functions take `now` so callers (and tests) decide the clock.

Account reads (`usage_by_key`, `account_usage`, the listing) count only the keys the
registry (`keys`) says the account owns and has not deleted: events for an unknown key,
or sent under an account that does not own the key, stay in the rollups but in no
account's totals, so an account's total is the sum of its listed keys. Such a read first
reads the account's keys from the registry (one small query) and restricts the rollup read
to them (`key_id IN [...]`): on chDB an `IN (SELECT ...)` semi-join inside the rollup
query costs several times that query (docs/decisions.md). `account_usage` gets the
per-key figures and their total in one pass over the rollup (`GROUPING SETS`).

The key registry projection itself (the keys agent's fold of the key events) is read by
the listing (`keys`, with the account's current plan from `accounts`), `account` and
`audit_log` (`key_audit`, one row per applied event, newest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from projections.ingest_log import event_age_s, newest_event_time, partition_watermarks
from projections.rollup_sql import (
    TABLE,
    USAGE_AGGREGATES,
    epoch,
    in_window,
    tier_condition,
    window_starts,
)
from projections.windows import NestedPlan, Tier, Window, plan_nested, plan_window
from schemas.utc import as_utc

HOURS_FROM = timedelta(days=2)
"""`plan_window`'s threshold for hour rows in timeseries."""


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
    """A key of the listing: its record in the registry projection (`keys`), the account's
    current plan (`accounts`), its last use and request counts."""

    key_id: str
    name: str
    key_type: str
    access: str
    status: str
    hint: str
    """The secret's prefix and first 4 characters, e.g. `pk_live_Ab3x`."""
    plan: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoke_reason: str | None
    last_used: datetime | None
    requests_24h: int
    requests_7d: int
    requests_30d: int
    allowed_cidrs: tuple[str, ...] = ()
    expires_at: datetime | None = None
    replaces: str | None = None
    replaced_by: str | None = None


@dataclass(frozen=True)
class AuditRow:
    """One applied key or account event (`key_audit`)."""

    seq: int
    event_id: UUID
    type: str
    key_id: str | None
    """None for an account event."""
    actor: str
    source_ip: str | None
    occurred_at: datetime
    detail: str


@dataclass(frozen=True)
class AccountRow:
    """An account as the projection has it, with its active keys per limit class
    (`live`, `test`, `admin`)."""

    account_id: str
    plan: str
    seq: int
    created_at: datetime
    updated_at: datetime
    active: dict[str, int]


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


_ONE_STREAM = {"max_threads": 1, "optimize_move_to_prewhere": 0}
"""t-digest merges depend on the order of the states: one stream keeps answers repeatable
(a live table and its replayed copy agree). PREWHERE buys nothing on reads this narrow
and its planning costs time (docs/decisions.md)."""

_POINT = _ONE_STREAM | {"query_plan_enable_optimizations": 0}
"""One key's rows: a single-table read of a few granules, which the plan optimizer has
nothing to improve on; its passes only cost planning time (docs/decisions.md)."""

_KEY = "account_id = {account:String} AND key_id = {key:String}"
_ACCOUNT = "account_id = {account:String}"
_OWNED_KEYS = (
    "SELECT key_id FROM keys FINAL WHERE account_id = {account:String} AND status != 'deleted'"
)
"""The keys the registry says the account owns (revoked included, deleted not)."""
_PLAN = "SELECT any(toString(plan)) FROM accounts FINAL WHERE account_id = {account:String}"
"""The account's current plan, "" when it has no row (a scalar subquery of the listing)."""
_LISTED = (
    "k.key_id, k.name, k.key_type, k.access, k.status, k.hint, k.created_at, k.created_by, "
    "k.revoked_at, k.revoke_reason, k.allowed_cidrs, k.expires_at, k.replaces, k.replaced_by"
)


def _key_row(row: Sequence[Any], counts: dict[str, tuple[int, int, int]]) -> KeyRow:
    """A listing row from `_LISTED`, last use, plan, and the key's request counts."""
    key_id, name, key_type, access, status, hint, created, by, revoked, reason = row[:10]
    cidrs, expires, replaces, replaced_by, last, plan = row[10:]
    day, week, month = counts.get(key_id, (0, 0, 0))
    return KeyRow(
        key_id=key_id,
        name=name,
        key_type=key_type,
        access=access,
        status=status,
        hint=hint,
        plan=plan,
        created_at=as_utc(created),
        created_by=by,
        revoked_at=as_utc(revoked) if revoked else None,
        revoke_reason=reason,
        last_used=as_utc(last) if last else None,
        requests_24h=day,
        requests_7d=week,
        requests_30d=month,
        allowed_cidrs=tuple(cidrs or ()),
        expires_at=as_utc(expires) if expires else None,
        replaces=replaces,
        replaced_by=replaced_by,
    )


def _usage(counters: Sequence[Any], quantiles: Sequence[Any]) -> Usage:
    """A `Usage` from the two `USAGE_AGGREGATES` values."""
    if not counters or not counters[0]:
        return EMPTY_USAGE
    requests, e4, e5, renders, bytes_out = (int(c) for c in counters)
    p50, p95, p99 = (float(q) for q in quantiles)
    return Usage(requests, e4, e5, renders, bytes_out, p50, p95, p99)


def _plan(windows: Sequence[Window], now: datetime) -> NestedPlan:
    return plan_nested([w.length for w in windows], as_utc(now))


class UsageQueries:
    """Read queries over one ClickHouse database (sync; call off the event loop)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def key_usage(self, account_id: str, key_id: str, window: Window, now: datetime) -> Usage:
        return self.key_summary(account_id, key_id, now, (window,))[window]

    def key_summary(
        self,
        account_id: str,
        key_id: str,
        now: datetime,
        windows: Sequence[Window] = tuple(Window),
    ) -> dict[Window, Usage]:
        """Usage of one key in each of `windows` (24h, 7d and 30d by default), one query.

        Each selected row is counted once per window it falls in (`ARRAY JOIN` over the
        window starts it is at or after) and grouped by that start.
        """
        plan = _plan(windows, now)
        rows = self._client.query(
            f"SELECT since, {USAGE_AGGREGATES} FROM {TABLE} "
            f"ARRAY JOIN arrayFilter(s -> bucket >= s, {window_starts(plan)}) AS since "
            f"WHERE {_KEY} AND ({tier_condition(plan)}) GROUP BY since",
            parameters={"account": account_id, "key": key_id},
            settings=_POINT,
        ).result_rows
        by_start = {int(since): _usage(counters, q) for since, counters, q in rows}
        return {
            window: by_start.get(epoch(start), EMPTY_USAGE)
            for window, start in zip(windows, plan.starts, strict=True)
        }

    def has_key(self, account_id: str, key_id: str) -> bool:
        """Whether the account has this key (revoked included, deleted not)."""
        return bool(
            self._client.query(
                f"SELECT count() FROM keys FINAL WHERE {_KEY} AND status != 'deleted'",
                parameters={"account": account_id, "key": key_id},
            ).result_rows[0][0]
        )

    def usage_by_key(
        self, account_id: str, window: Window, now: datetime, key_ids: list[str] | None = None
    ) -> dict[str, Usage]:
        """Usage of every registered key of the account (optionally only those among
        `key_ids`); keys without requests in the window are left out."""
        owned = self._owned_keys(account_id)
        if key_ids is not None:
            wanted = set(key_ids)
            owned = [k for k in owned if k in wanted]
        return self._by_key(account_id, owned, window, now, with_total=False)[0]

    def _owned_keys(self, account_id: str) -> list[str]:
        rows = self._client.query(_OWNED_KEYS, parameters={"account": account_id}).result_rows
        return [str(key) for (key,) in rows]

    def _by_key(
        self, account_id: str, key_ids: list[str], window: Window, now: datetime, with_total: bool
    ) -> tuple[dict[str, Usage], Usage]:
        """Usage of each of the account's `key_ids` with requests in the window and, with
        `with_total`, of all of them together (a grouping set of its own: latency
        digests can only be merged in the query), in one pass."""
        if not key_ids:
            return {}, EMPTY_USAGE
        plan = _plan((window,), now)
        sets = "(key_id), ()" if with_total else "(key_id)"
        rows = self._client.query(
            f"SELECT grouping(key_id), key_id, {USAGE_AGGREGATES} FROM {TABLE} "
            f"WHERE {_ACCOUNT} AND key_id IN {{keys:Array(String)}} "
            f"AND ({tier_condition(plan)}) GROUP BY GROUPING SETS ({sets})",
            parameters={"account": account_id, "keys": key_ids},
            settings=_ONE_STREAM,
        ).result_rows
        per_key: dict[str, Usage] = {}
        total = EMPTY_USAGE
        for is_total, key, counters, quantiles in rows:
            usage = _usage(counters, quantiles)
            if is_total:
                total = usage
            elif usage.requests:
                per_key[str(key)] = usage
        return per_key, total

    def key_timeseries(
        self, account_id: str, key_id: str, window: Window, step: timedelta, now: datetime
    ) -> list[Point]:
        """Buckets of `step` (a whole number of minutes) across the window, oldest first."""
        step_s = int(step.total_seconds())
        if step_s < 60 or step_s % 60:
            raise ValueError("step must be a whole number of minutes")
        plan = plan_window(window.length, as_utc(now), HOURS_FROM)
        use_hours = step_s % 3600 == 0 and plan.hour_span is not None
        tier = Tier.HOUR if use_hours else Tier.MINUTE
        rows = self._client.query(
            "SELECT toStartOfInterval(bucket, toIntervalSecond({step:UInt32})) AS at, "
            "sum(requests), sum(errors_4xx), sum(errors_5xx), "
            "quantilesTDigestMerge(0.5, 0.95, 0.99)(latency)[2] "
            f"FROM {TABLE} WHERE {_KEY} AND tier = {{tier:String}} "
            f"AND bucket >= {epoch(plan.start)} AND bucket < {epoch(plan.end)} "
            "GROUP BY at ORDER BY at",
            parameters={"step": step_s, "account": account_id, "key": key_id, "tier": tier},
        ).result_rows
        return [
            Point(as_utc(b), int(r), int(e4), int(e5), float(p95) if r else None)
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
            f"SELECT {_LISTED}, l.last_used, "
            f"({_PLAN}) FROM (SELECT * FROM keys FINAL "
            f"WHERE account_id = {{account:String}} AND status != 'deleted'{only}) AS k "
            "LEFT JOIN (SELECT key_id, max(last_used) AS last_used FROM key_last_used "
            f"WHERE account_id = {{account:String}}{only} GROUP BY key_id) AS l "
            "ON k.key_id = l.key_id ORDER BY k.created_at, k.key_id",
            parameters={"account": account_id, "key": key_id or ""},
            settings={"join_use_nulls": 1},
        ).result_rows
        if not keys:
            return []
        counts = self._requests_by_key(account_id, now, key_id)
        return [_key_row(row, counts) for row in keys]

    def audit_log(
        self, account_id: str, limit: int, before_seq: int | None = None
    ) -> tuple[list[AuditRow], bool]:
        """The account's applied events, newest first: at most `limit` of them (those
        before `before_seq` when given) and whether older ones remain."""
        before = " AND seq < {before:UInt64}" if before_seq is not None else ""
        rows = self._client.query(
            "SELECT seq, event_id, type, key_id, actor, source_ip, occurred_at, detail "
            f"FROM key_audit FINAL WHERE {_ACCOUNT}{before} "
            "ORDER BY seq DESC LIMIT {limit:UInt32}",
            parameters={"account": account_id, "before": before_seq or 0, "limit": limit + 1},
        ).result_rows
        audit = [
            AuditRow(
                seq=int(seq),
                event_id=event_id,
                type=str(kind),
                key_id=str(key) or None,
                actor=str(actor),
                source_ip=None if ip is None else str(ip),
                occurred_at=as_utc(at),
                detail=str(detail),
            )
            for seq, event_id, kind, key, actor, ip, at, detail in rows[:limit]
        ]
        return audit, len(rows) > limit

    def account(self, account_id: str) -> AccountRow | None:
        """The account's plan, position and active keys per limit class (None: unknown)."""
        rows = self._client.query(
            "SELECT plan, seq, created_at, updated_at FROM accounts FINAL WHERE " + _ACCOUNT,
            parameters={"account": account_id},
        ).result_rows
        if not rows:
            return None
        plan, seq, created, updated = rows[0]
        active = self._client.query(  # counted as the ledger counts (`AccountLedger.count`)
            "SELECT if(access = 'admin', 'admin', key_type) AS class, count() "
            f"FROM keys FINAL WHERE {_ACCOUNT} AND status = 'active' AND replaced_by IS NULL "
            "AND (expires_at IS NULL OR expires_at > {at:DateTime64(3, 'UTC')}) GROUP BY class",
            parameters={"account": account_id, "at": as_utc(updated)},
        ).result_rows
        return AccountRow(
            account_id=account_id,
            plan=str(plan),
            seq=int(seq),
            created_at=as_utc(created),
            updated_at=as_utc(updated),
            active={str(c): int(n) for c, n in active},
        )

    def _requests_by_key(
        self, account_id: str, now: datetime, key_id: str | None = None
    ) -> dict[str, tuple[int, int, int]]:
        """Requests per key in the last 24h, 7d and 30d, in one pass over the rollup (the
        listing keeps only the rows of the keys the registry lists for the account)."""
        where = _ACCOUNT + (" AND key_id = {key:String}" if key_id is not None else "")
        plan = _plan((Window.H24, Window.D7, Window.D30), now)
        sums = ", ".join(f"sumIf(requests, {in_window(plan, i)})" for i in range(3))
        rows = self._client.query(
            f"SELECT key_id, {sums} FROM {TABLE} "
            f"WHERE {where} AND ({tier_condition(plan)}) GROUP BY key_id",
            parameters={"account": account_id, "key": key_id or ""},
        ).result_rows
        return {k: (int(a), int(b), int(c)) for k, a, b, c in rows}

    def account_usage(
        self, account_id: str, window: Window, now: datetime, top: int = 10
    ) -> AccountUsage:
        """The account's total over its registered keys, and its `top` keys by requests."""
        owned = self._owned_keys(account_id)
        per_key, total = self._by_key(account_id, owned, window, now, with_total=True)
        ranked = sorted(((k, u.requests) for k, u in per_key.items()), key=lambda x: -x[1])
        return AccountUsage(window, total, ranked[:top])

    def freshness(self, topic: str, now: datetime) -> Freshness:
        newest = newest_event_time(self._client, topic)
        age = event_age_s(newest, now)
        return Freshness(newest, age, partition_watermarks(self._client, topic))
