"""The `usage_spike` read: per key, the window's requests and the same window 1 … 42 days
earlier (`alerting.ports.SPIKE_LAG_DAYS`), in ONE query over `usage_rollup`.

Spans (UTC, epoch seconds; `now` is the evaluation time):

- the window [s, e) ends with the end of `now`'s minute and starts `window_s` earlier,
  exactly as `projections.windows.plan_nested` plans it (minute rows for the partial
  hours, hour rows for the whole ones): `current` is its requests, exact to the minute;
- lag d (1 … 42) is the window shifted d days back, [s - d·86400, e - d·86400), estimated
  from the hour rows that overlap it (listed by bucket, at most 7 per lag): an hour
  bucket b adds requests x overlap / 3600. Windows are at most 6 h (the rule validates
  it), so a bucket overlaps at most one shifted window, and that window's d is
  intDiv(e - b - 1, 86400): b overlaps lag d exactly when e - d·86400 - window - 3600 <
  b < e - d·86400, i.e. d·86400 <= e - b - 1 < d·86400 + window + 3599, which stays
  below (d + 1)·86400. The sums per (key, lag) are integers (requests x overlap seconds)
  summed in an inner GROUP BY; the outer one places them in one array per key.
- history: the day rows of the 42 days give the key's first day with requests, which
  is `history_start` (the start of that day); the hour rows read give its first hour with
  requests among them. Reading every hour row of the 42 days for the exact first hour
  would cost ~1,000 rows per key instead of ~80.

A lag is None when the key is not known to have sent by the end of its window: the window
ends at or before the first hour with requests read, or before the end of the first day
with requests, whichever is earlier (only a lag on that first day, without requests of its
own, can be None although the key was already sending). Any other lag without rows is 0.

Scope: `projections.alert_scope.scope_sql`; account-wide scopes count only the keys the
registry says the account owns (`scope_keys`, the one other, small read, which also
gives the keys' names). Keys with neither requests in the window nor a day with requests
within the 42 days are absent from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import SPIKE_LAG_DAYS, SpikeHistory, StatsByKey, StatsQuery, WindowStats
from projections.alert_scope import scope_keys, scope_sql
from projections.rollup_sql import TABLE, epoch, tier_condition
from projections.windows import plan_nested
from schemas.utc import as_utc, from_epoch_ms

DAY_S = 86_400
HOUR_S = 3_600

_SQL = """
SELECT account_id, key_id, sum(current) AS current_requests,
       groupArrayInsertAt(toInt64(0), {lags})(shifted, toUInt32(lag)) AS lags,
       minIf(first_hour, first_hour > 0) AS first_hour,
       minIf(first_day, first_day > 0) AS history_start
FROM (
    SELECT account_id, key_id,
           if(tier = 'hour', intDiv({end} - toInt64(bucket) - 1, {day}), 0) AS lag,
           sumIf(requests, {current}) AS current,
           toInt64(sumIf(requests * greatest(0,
                     least(toInt64(bucket) + {hour}, {end} - lag * {day})
                     - greatest(toInt64(bucket), {start} - lag * {day})),
                 tier = 'hour')) AS shifted,
           minIf(toInt64(bucket), tier = 'hour' AND requests > 0) AS first_hour,
           minIf(toInt64(bucket), tier = 'day' AND requests > 0) AS first_day
    FROM {table}
    WHERE {scope} AND (({current})
          OR (tier = 'hour' AND bucket IN ({lag_hours}))
          OR (tier = 'day' AND bucket >= {days_from} AND bucket < {end}))
    GROUP BY account_id, key_id, lag
)
GROUP BY account_id, key_id
HAVING current_requests > 0 OR history_start > 0
"""
"""`lags[d]` is lag d's requests x overlap seconds (divided by 3600 in Python; index 0 is
the current day's, unused); 0 stands for no first hour or day (ClickHouse's default of an
empty `minIf`)."""


def _lag_hours(start: int, end: int) -> list[int]:
    """The hour buckets that overlap the window [start, end) shifted 1 … 42 days back."""
    return [
        b
        for d in range(1, SPIKE_LAG_DAYS + 1)
        for b in range((start - d * DAY_S) // HOUR_S * HOUR_S, end - d * DAY_S, HOUR_S)
    ]


def spike_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a `usage_spike` query (see the module docstring)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    start, end = epoch(plan.starts[0]), epoch(plan.end)
    params: dict[str, Any] = {}
    sql = _SQL.format(
        table=TABLE,
        scope=scope_sql(query, params),
        current=tier_condition(plan),
        lag_hours=", ".join(map(str, _lag_hours(start, end))),
        days_from=(start - SPIKE_LAG_DAYS * DAY_S) // DAY_S * DAY_S,
        lags=SPIKE_LAG_DAYS + 1,
        start=start,
        end=end,
        day=DAY_S,
        hour=HOUR_S,
    )
    return sql, params


def lag_values(
    end: int, shifted: Sequence[int], first_hour: int | None, first_day: int | None
) -> tuple[float | None, ...]:
    """`SpikeHistory.lags` from the summed requests x overlap seconds per lag (`shifted[d]`)
    and the first hour and day with requests (epoch seconds; see the module docstring)."""
    day_end = first_day + DAY_S if first_day is not None else None
    since = min((t for t in (first_hour, day_end) if t is not None), default=None)
    return tuple(
        None if since is None or end - d * DAY_S <= since else shifted[d] / HOUR_S
        for d in range(1, SPIKE_LAG_DAYS + 1)
    )


def spike_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    """Per key in scope with requests in the window or within the 42 days before: its
    `SpikeHistory` (one query, plus the registry read for names and the account-wide
    filter)."""
    if not query.accounts and not query.key_pairs:
        return {}
    scope = scope_keys(client, query)
    sql, params = spike_sql(query, now)
    end = epoch(plan_nested([timedelta(seconds=query.window_s)], as_utc(now)).end)
    out: StatsByKey = {}
    rows = client.query(sql, parameters=params).result_rows
    for row_account, row_key, current, lags, first_hour, first_day in rows:
        account, key = str(row_account), str(row_key)
        if not scope.counts(account, key):
            continue
        day = int(first_day) or None
        entry = scope.registered.get((account, key))
        history = SpikeHistory(
            current=int(current),
            lags=lag_values(end, [int(v) for v in lags], int(first_hour) or None, day),
            history_start=from_epoch_ms(day * 1000) if day is not None else None,
            name=entry.name if entry is not None and entry.name else None,
        )
        out[(account, key)] = WindowStats(history.current, spike=history)
    return out
