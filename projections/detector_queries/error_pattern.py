"""The `error_pattern` read: per key, the window's requests and errors of the rule's status
class, and the same over the baseline before it, in ONE query.

Spans (UTC; `now` is the evaluation time):

- the window ends with the end of `now`'s minute and starts `window_s` earlier, exactly as
  `projections.windows.plan_nested` plans it: minute rows for the partial hours at its
  head and tail, hour rows for the whole hours (whole days too are read as hours);
- the baseline is the `lookback_s` (default 7 days) of whole hours before the window's
  first hour: [floor_hour(start) - lookback, floor_hour(start)), hour rows only. The
  minutes between the window's start and the hour before it (at most 59, e.g. 11:00-11:53
  for a window starting 11:53) belong to neither: the baseline never overlaps the window.

Rows: requests from `usage_rollup`; errors of the classes `all`, `4xx`, `5xx` from its
`errors_4xx`/`errors_5xx`, of a single status (401, 403, 429) from `key_status_rollup`
(migration 0018), the two tables read in one `UNION ALL` by the same row condition (the
same tier names and buckets) and summed per key. Every row selected lies either in the
window (bucket >= its start) or in the baseline (bucket < the hour before it), so one pass
sums both. `history_start` is the first baseline hour with requests.

Scope: `projections.alert_scope.scope_sql`; account-wide scopes count only the keys the
registry says the account owns (`scope_keys`, the one other, small read, which also
gives the keys' names). Keys without requests in the window are absent from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from clickhouse_connect.driver.client import Client

from alerting.ports import ErrorHistory, StatsByKey, StatsQuery, WindowStats
from projections.alert_scope import scope_keys, scope_sql
from projections.rollup_sql import TABLE as USAGE_TABLE
from projections.rollup_sql import buckets, epoch
from projections.windows import Span, Tier, plan_nested
from schemas.alerts import KIND_DEFAULTS, ErrorClass, RuleKind
from schemas.utc import as_utc

STATUS_TABLE = "key_status_rollup"
DEFAULT_LOOKBACK_S = cast(int, KIND_DEFAULTS[RuleKind.ERROR_PATTERN]["lookback_s"])
"""The baseline's span when the query has none (validated rules carry the kind's default)."""

_USAGE_ERRORS = {
    ErrorClass.ALL: "errors_4xx + errors_5xx",
    ErrorClass.CLIENT: "errors_4xx",
    ErrorClass.SERVER: "errors_5xx",
}
"""The classes `usage_rollup` answers; the others are single statuses."""

_SQL = """
SELECT account_id, key_id,
       sumIf(requests, bucket >= {start}) AS window_requests,
       sumIf(errors, bucket >= {start}) AS window_errors,
       sumIf(requests, bucket < {start}) AS baseline_requests,
       sumIf(errors, bucket < {start}) AS baseline_errors,
       minIf(bucket, bucket < {start} AND requests > 0) AS history_start
FROM ({rows})
GROUP BY account_id, key_id
HAVING window_requests > 0
"""


def _hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _row_condition(minutes: Sequence[Span], hours: Sequence[Span]) -> str:
    """The minute and hour rows of the spans, as `rollup_sql.tier_condition` lists them."""
    terms = []
    for tier, spans in ((Tier.MINUTE, minutes), (Tier.HOUR, hours)):
        listed = buckets(tier, tuple(spans))
        if listed:
            terms.append(f"(tier = '{tier.value}' AND bucket IN ({', '.join(map(str, listed))}))")
    return " OR ".join(terms)


def error_pattern_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of an `error_pattern` query (see the module docstring)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    start = plan.starts[0]
    baseline_end = _hour_floor(start)
    lookback = timedelta(seconds=query.options.lookback_s or DEFAULT_LOOKBACK_S)
    hours = (*plan.tiers.hours, *plan.tiers.days, (baseline_end - lookback, baseline_end))
    rows = _row_condition(plan.tiers.minutes, hours)
    params: dict[str, Any] = {}
    where = f"{scope_sql(query, params)} AND ({rows})"
    status_class = query.options.status_class or ErrorClass.ALL
    usage_errors = _USAGE_ERRORS.get(status_class)
    parts = [
        f"SELECT account_id, key_id, bucket, toUInt64(requests) AS requests, "
        f"toUInt64({usage_errors or '0'}) AS errors FROM {USAGE_TABLE} WHERE {where}"
    ]
    if usage_errors is None:
        status = int(status_class.value)  # an ErrorClass member: digits only
        parts.append(
            f"SELECT account_id, key_id, bucket, toUInt64(0), toUInt64(responses) "
            f"FROM {STATUS_TABLE} WHERE {where} AND status = {status}"
        )
    sql = _SQL.format(start=epoch(start), rows=" UNION ALL ".join(parts))
    return sql, params


def error_pattern_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    """Per key in scope with requests in the window: its `ErrorHistory` (one query, plus
    the registry read for names and the account-wide filter)."""
    if not query.accounts and not query.key_pairs:
        return {}
    scope = scope_keys(client, query)
    sql, params = error_pattern_sql(query, now)
    out: StatsByKey = {}
    rows = client.query(sql, parameters=params).result_rows
    for row_account, row_key, requests, errors, b_requests, b_errors, first in rows:
        account, key = str(row_account), str(row_key)
        if not scope.counts(account, key):
            continue
        entry = scope.registered.get((account, key))
        history = ErrorHistory(
            requests=int(requests),
            errors=int(errors),
            baseline_requests=int(b_requests),
            baseline_errors=int(b_errors),
            history_start=as_utc(first) if int(b_requests) > 0 else None,
            name=entry.name if entry is not None and entry.name else None,
        )
        out[(account, key)] = WindowStats(history.requests, history.errors, error_history=history)
    return out
