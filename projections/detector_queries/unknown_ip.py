"""The `unknown_ip` read: per key, the client addresses (or networks) it first used within
the window, and how many others it used within the lookback, in ONE query over
`key_ip_day` (migration 0017: one row per key, UTC day and client IP).

Spans (UTC; `now` is the evaluation time):

- the window ends with the end of `now`'s minute and starts `window_s` earlier, exactly as
  `projections.windows.plan_nested` plans it;
- the lookback is read in whole UTC days: the rows of the days from the day `lookback_s`
  (whole days, default 14) before the window's start's day up to the window's end's day.
  So an address counts as known when the key used it at any time from the start of that
  day to the window's start: the lookback is between `lookback_s` and one day longer.

Per subject (the client IP, or with `granularity = prefix` its IPv4 /24 or IPv6 /48
network, computed in SQL; an IPv4-mapped IPv6 client `::ffff:cb00:7105` counts as its
IPv4 address `203.0.113.5` at both granularities): its first use within the lookback is
the `min(first_seen)` of its day rows, exact to the millisecond since a day row keeps its
first request's time.
A subject whose first use lies in the window is *new* (`NewAddress`); one first used before
the window counts as *known*. A day row whose first request is at or after the window's end
is not read (a replay evaluating the past must not see later addresses); the new subjects'
`last_seen` and `requests` sum their rows of the window's days, so a row that goes on after
the window's end counts its later requests too (none at live evaluation, where nothing later
has arrived). `history_start` is the key's first request over every retained row (33 days).
`WindowStats.requests` is the new subjects' requests. Rows without a client IP ("") are
ignored (the table keeps none).

Answer: only keys with at least one new subject (the others are observed with no stats,
which is quiet). Scope: `projections.alert_scope.scope_sql`; account-wide scopes count only
the keys the registry says the account owns (`scope_keys`, the one other, small read,
which also gives the keys' names and allow-lists).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from clickhouse_connect.driver.client import Client

from alerting.ports import AddressHistory, NewAddress, StatsByKey, StatsQuery, WindowStats
from projections.alert_scope import scope_keys, scope_sql
from projections.windows import plan_nested
from schemas.alerts import KIND_DEFAULTS, IpGranularity, RuleKind
from schemas.utc import as_utc

TABLE = "key_ip_day"
DEFAULT_LOOKBACK_S = cast(int, KIND_DEFAULTS[RuleKind.UNKNOWN_IP]["lookback_s"])
"""The lookback when the query has none (validated rules carry the kind's default)."""

_CLIENT = (
    "if(startsWith(client_ip, '::ffff:') "
    "AND isIPv4String(substring(IPv6NumToString(toIPv6OrDefault(client_ip)), 8)), "
    "substring(IPv6NumToString(toIPv6OrDefault(client_ip)), 8), client_ip)"
)
"""The client IP, an IPv4-mapped IPv6 one (`::ffff:cb00:7105`, as Python writes it) as its
IPv4 address (`203.0.113.5`); others as stored (canonical text)."""

_NETWORK = (
    "multiIf(isIPv4String(ip), "
    "concat(IPv4NumToString(tupleElement(IPv4CIDRToRange(toIPv4OrDefault(ip), 24), 1)), '/24'), "
    "isIPv6String(ip), "
    "concat(IPv6NumToString(tupleElement(IPv6CIDRToRange(toIPv6OrDefault(ip), 48), 1)), '/48'), "
    "ip)"
)
"""The /24 or /48 network of `ip` (`198.51.100.0/24`, `2001:db8:1::/48`)."""

_SQL = """
SELECT account_id, key_id,
       min(history) AS history_start,
       countIf(ifNull(first_use < {{start:DateTime64(3, 'UTC')}}, 0)) AS known,
       groupArrayIf((subject, first_use, last_use, used),
                    ifNull(first_use >= {{start:DateTime64(3, 'UTC')}}, 0)) AS new
FROM (
    SELECT account_id, key_id, {subject} AS subject, min(history) AS history,
           min(first_use) AS first_use, max(last_use) AS last_use, sum(used) AS used
    FROM (
        SELECT account_id, key_id, {client} AS ip, history, first_use, last_use, used
        FROM (
            SELECT account_id, key_id, client_ip,
                   min(first_seen) AS history,
                   minIfOrNull(first_seen, day >= {{since:Date}}) AS first_use,
                   maxIf(last_seen, day >= {{since:Date}}) AS last_use,
                   sumIf(requests, day >= {{since:Date}}) AS used
            FROM {table}
            WHERE {scope} AND client_ip != '' AND day <= {{until:Date}}
              AND first_seen < {{end:DateTime64(3, 'UTC')}}
            GROUP BY account_id, key_id, client_ip
        )
    )
    GROUP BY account_id, key_id, subject
)
GROUP BY account_id, key_id
HAVING length(new) > 0
"""
"""Per (key, client IP) over the day rows, then per subject (the client's address or
network, computed on those far fewer rows), then per key."""


def lookback_days(query: StatsQuery) -> int:
    """The query's lookback in whole days (the default, 14, when it has none)."""
    return max(1, (query.options.lookback_s or DEFAULT_LOOKBACK_S) // 86_400)


def unknown_ip_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters answering `query` (see the module docstring)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    start, end = plan.starts[0], plan.end
    since = start.date() - timedelta(days=lookback_days(query))
    until = (end - timedelta(milliseconds=1)).date()
    params: dict[str, Any] = {"start": start, "end": end, "since": since, "until": until}
    prefix = query.options.granularity is IpGranularity.PREFIX
    sql = _SQL.format(
        subject=_NETWORK if prefix else "ip",
        client=_CLIENT,
        table=TABLE,
        scope=scope_sql(query, params),
    )
    return sql, params


def _new(entries: Sequence[Any]) -> tuple[NewAddress, ...]:
    found = [
        NewAddress(str(subject), as_utc(first), as_utc(last), int(used))
        for subject, first, last, used in entries
    ]
    return tuple(sorted(found, key=lambda a: (a.first_seen, a.subject)))


def unknown_ip_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    """Per key in scope with a new subject in the window: its `AddressHistory`."""
    if not query.accounts and not query.key_pairs:
        return {}
    scope = scope_keys(client, query)
    sql, params = unknown_ip_sql(query, now)
    rows = client.query(sql, parameters=params).result_rows
    out: StatsByKey = {}
    for account, key, history_start, known, entries in rows:
        pair = (str(account), str(key))
        if not scope.counts(*pair):
            continue
        reg = scope.registered.get(pair)
        new = _new(entries)
        addresses = AddressHistory(
            new=new,
            known=int(known),
            history_start=as_utc(history_start),
            allowed_cidrs=reg.allowed_cidrs if reg else (),
            name=reg.name if reg and reg.name else None,
        )
        out[pair] = WindowStats(sum(a.requests for a in new), addresses=addresses)
    return out
