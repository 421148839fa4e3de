"""The API Keys page's reads of its shown keys, one query each whatever their number
(never one per key), restricted to those keys (`key_id IN [...]`) rather than the whole
account:

- `page_usage`: per key, requests in the last 24h, 7d and 30d (exact to the minute, as
  every usage window: `projections.windows.plan_nested` over the rollup's minute, hour and
  day rows, each row counted in the windows it falls in, like the listing's
  `UsageQueries._requests_by_key`), requests per UTC day over the last `SPARK_DAYS` days
  (the sparkline; day rows) and renders today (the UTC day: the test-key quota's), in
  ONE single-table SELECT of `usage_rollup`;
- `firing_kinds`: per key, the kinds of the alert rules with a firing (or recovering:
  still in its episode) instance for it, among `key_list_view.BADGE_KINDS` (the latest
  state per instance from `alert_instances`, the current kind per rule from
  `alert_rules`, as `projections.alert_store` reads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from infra.console.key_list_view import BADGE_KINDS, SPARK_DAYS, KeyUsage
from projections.rollup_sql import TABLE, epoch, in_window, tier_condition
from projections.windows import Window, plan_nested
from schemas.alerts import AlertState
from schemas.utc import as_utc

__all__ = ["WINDOWS", "firing_kinds", "page_usage", "utc_days"]

WINDOWS = (Window.H24, Window.D7, Window.D30)
_OPEN_STATES = (AlertState.FIRING.value, AlertState.RECOVERING.value)


def utc_days(now: datetime, days: int = SPARK_DAYS) -> list[int]:
    """The starts (epoch seconds) of the last `days` UTC days, oldest first, today last."""
    today = epoch(as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0))
    step = int(timedelta(days=1).total_seconds())
    return [today - step * (days - 1 - i) for i in range(days)]


def _usage_sql(now: datetime) -> str:
    plan = plan_nested([w.length for w in WINDOWS], as_utc(now))
    days = utc_days(now)
    spark = f"tier = 'day' AND bucket IN ({', '.join(map(str, days))})"
    windows = ", ".join(
        f"sumIf(requests, in_plan AND {in_window(plan, i)})" for i in range(len(WINDOWS))
    )
    return (
        f"WITH ({tier_condition(plan)}) AS in_plan, ({spark}) AS in_spark "
        f"SELECT key_id, {windows}, "
        "sumMapIf([toUInt32(bucket)], [toUInt64(requests)], in_spark), "
        f"sumIf(renders, tier = 'day' AND bucket = {days[-1]}) FROM {TABLE} "
        "WHERE account_id = {account:String} AND key_id IN {keys:Array(String)} "
        "AND (in_plan OR in_spark) GROUP BY key_id"
    )


def page_usage(
    client: Client, account_id: str, key_ids: Sequence[str], now: datetime
) -> dict[str, KeyUsage]:
    """The usage of each of `key_ids` (keys without requests in 30 days left out)."""
    if not key_ids:
        return {}
    days = utc_days(now)
    rows = client.query(
        _usage_sql(now), parameters={"account": account_id, "keys": sorted(set(key_ids))}
    ).result_rows
    out: dict[str, KeyUsage] = {}
    for key_id, day, week, month, (starts, counts), renders in rows:
        per_day = dict(zip((int(s) for s in starts), (int(c) for c in counts), strict=True))
        out[str(key_id)] = KeyUsage(
            windows=(int(day), int(week), int(month)),
            per_day=tuple(per_day.get(d, 0) for d in days),
            renders_today=int(renders),
        )
    return out


_FIRING = """
SELECT i.subject, r.kind FROM (
    SELECT any(key_id) AS subject, any(rule_id) AS rule
    FROM alert_instances
    WHERE account_id = {account:String} AND key_id IN {keys:Array(String)}
    GROUP BY fingerprint HAVING argMax(state, version) IN {states:Array(String)}
) AS i INNER JOIN (
    SELECT rule_id AS rule, argMax(kind, version) AS kind FROM alert_rules
    WHERE account_id = {account:String} GROUP BY rule_id
) AS r ON i.rule = r.rule
WHERE r.kind IN {kinds:Array(String)}
"""


def firing_kinds(
    client: Client, account_id: str, key_ids: Sequence[str]
) -> dict[str, frozenset[str]]:
    """Per key of `key_ids` with one, the badge kinds of its open alert instances."""
    if not key_ids:
        return {}
    rows = client.query(
        _FIRING,
        parameters={
            "account": account_id,
            "keys": sorted(set(key_ids)),
            "states": list(_OPEN_STATES),
            "kinds": sorted(BADGE_KINDS),
        },
    ).result_rows
    found: dict[str, set[str]] = {}
    for key_id, kind in rows:
        found.setdefault(str(key_id), set()).add(str(kind))
    return {k: frozenset(v) for k, v in found.items()}
