"""The `usage_spike` read: per key, the window's requests and the same window 1 … 42 days
earlier (`alerting.ports.SPIKE_LAG_DAYS`), in ONE query over `usage_rollup`.

Spans (UTC, epoch seconds; `now` is the evaluation time):

- the window [s, e) ends with the end of `now`'s minute and starts `window_s` earlier,
  exactly as `projections.windows.plan_nested` plans it (minute rows for the partial
  hours, hour rows for the whole ones): `current` is its requests, exact to the minute;
- lag d (1 … 42) is the window shifted d days back, [s - d·86400, e - d·86400), estimated
  from hour rows: an hour bucket b overlapping it adds requests x overlap / 3600. Windows
  are at most 6 h (the rule validates it), so a bucket overlaps at most one shifted window
  and that window's d is intDiv(e - b - 1, 86400): b overlaps lag d exactly when
  e - d·86400 - window - 3600 < b < e - d·86400, i.e. d·86400 <= e - b - 1 <
  d·86400 + window + 3599, which stays below (d + 1)·86400. A bucket between two shifted
  windows gets some lag it does not overlap and adds 0 (the overlap is clamped at 0).
  The hour rows read are one contiguous range per key, [floor_hour(s - 42 d), e), which
  also gives `history_start`: the key's first hour with requests in it. The sums per
  (key, lag) are integers (requests x overlap seconds) summed by ClickHouse in an inner
  GROUP BY; the outer one gathers a key's lags into one array.

A lag whose shifted window ends at or before `history_start` is None (the key did not
send yet); any other lag without rows is 0.

Scope: `projections.alert_scope.scope_sql`; account-wide scopes count only the keys the
registry says the account owns (`registered_keys`, the one other, small read, which also
gives the keys' names). Keys with neither requests in the window nor any hour with
requests within the 42 days are absent from the answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import SPIKE_LAG_DAYS, SpikeHistory, StatsByKey, StatsQuery, WindowStats
from projections.alert_scope import in_wide_scope, registered_keys, scope_sql
from projections.rollup_sql import TABLE, epoch, tier_condition
from projections.windows import plan_nested
from schemas.utc import as_utc, from_epoch_ms

DAY_S = 86_400
HOUR_S = 3_600

_SQL = """
SELECT account_id, key_id, sum(current) AS current_requests,
       groupArrayIf((lag, shifted), lag >= 1 AND shifted > 0) AS lags,
       minIf(first_hour, first_hour > 0) AS history_start
FROM (
    SELECT account_id, key_id,
           if(tier = 'hour', intDiv({end} - toInt64(bucket) - 1, {day}), 0) AS lag,
           sumIf(requests, {current}) AS current,
           sumIf(requests * greatest(0,
                     least(toInt64(bucket) + {hour}, {end} - lag * {day})
                     - greatest(toInt64(bucket), {start} - lag * {day})),
                 tier = 'hour') AS shifted,
           minIf(toInt64(bucket), tier = 'hour' AND requests > 0) AS first_hour
    FROM {table}
    WHERE {scope} AND (({current})
          OR (tier = 'hour' AND bucket >= {history_from} AND bucket < {end}))
    GROUP BY account_id, key_id, lag
)
GROUP BY account_id, key_id
HAVING current_requests > 0 OR history_start > 0
"""
"""`shifted` is requests x overlap seconds (divided by 3600 in Python); `first_hour` 0
stands for none (ClickHouse's default of an empty `minIf`)."""


def spike_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a `usage_spike` query (see the module docstring)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    start, end = epoch(plan.starts[0]), epoch(plan.end)
    history_from = (start - SPIKE_LAG_DAYS * DAY_S) // HOUR_S * HOUR_S
    params: dict[str, Any] = {}
    sql = _SQL.format(
        table=TABLE,
        scope=scope_sql(query, params),
        current=tier_condition(plan),
        start=start,
        end=end,
        history_from=history_from,
        day=DAY_S,
        hour=HOUR_S,
    )
    return sql, params


def lag_values(
    end: int, shifted: dict[int, int], history_start: int | None
) -> tuple[float | None, ...]:
    """`SpikeHistory.lags` from the summed requests x overlap seconds per lag: None for a
    lag whose window ends at or before `history_start` (epoch seconds), else requests."""
    return tuple(
        None
        if history_start is None or end - d * DAY_S <= history_start
        else shifted.get(d, 0) / HOUR_S
        for d in range(1, SPIKE_LAG_DAYS + 1)
    )


def spike_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    """Per key in scope with requests in the window or within the 42 days before: its
    `SpikeHistory` (one query, plus the registry read for names and the account-wide
    filter)."""
    if not query.accounts and not query.key_pairs:
        return {}
    registered = registered_keys(client, query.accounts, [k for _, k in query.key_pairs])
    sql, params = spike_sql(query, now)
    end = epoch(plan_nested([timedelta(seconds=query.window_s)], as_utc(now)).end)
    out: StatsByKey = {}
    for row_account, row_key, current, lags, first in client.query(
        sql, parameters=params
    ).result_rows:
        account, key = str(row_account), str(row_key)
        if not in_wide_scope(query, account, key, registered):
            continue
        start = int(first) if int(first) > 0 else None
        entry = registered.get((account, key))
        history = SpikeHistory(
            current=int(current),
            lags=lag_values(end, {int(d): int(v) for d, v in lags}, start),
            history_start=from_epoch_ms(start * 1000) if start is not None else None,
            name=entry.name if entry is not None and entry.name else None,
        )
        out[(account, key)] = WindowStats(history.current, spike=history)
    return out
