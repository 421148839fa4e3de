"""`credential_stuffing`'s read: per (account, client IP), the distinct bad keys the IP
presented within the window, in ONE query over `verification_outcomes`.

Attribution. A revoked, expired or deleted key belongs to the account the verifier found
it in (the row's `account_id`); a `malformed` or `unknown` string belongs to no account.
For an account of the query's scope, the figure of a client IP is:

- the account's distinct keys (by `key_id`) the IP presented with the verdict `revoked`,
  `expired` or `deleted`, plus
- the IP's distinct `malformed` and `unknown` strings (by `presented_digest`), when the
  IP presented at least one key of this account in the window, whatever its verdict
  (`valid` included).

So an IP that tries many made-up strings and one real key of an account (or that holds
a valid key of it) is charged to that account, and to every other account whose key it
presented in the window too. The limit: pure random stuffing that touches no account's
key is attributable to no account and is not reported (the rows are there:
`verification_outcomes` keeps them, by client IP, for a future operator-wide detector).
Rows without a client IP are ignored, and so are `malformed`/`unknown` rows written
before migration 0019 (without a digest, distinct strings cannot be told apart).
Verdicts `ip_not_allowed` and `quota_exceeded` name a valid key: not bad keys, but they do
show the IP holds a key of the account.

The query reads the window's rows only (by the day partitions; the table's projection
is ordered by client IP and time), groups them by (client IP, account) -- the keyless
rows form the group of account "" -- and hands each account's group its IP's keyless
figures through a window function over the client IP, so the table is read once. Only
pairs with at least one bad key are returned. Deleted keys count (the registry read of
`projections.alert_scope` leaves them out, so it is not used; the subject is an IP, so no
key names are needed). The window is the rollups' (`projections.windows.plan_nested`):
it ends with the end of `now`'s minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.ports import StatsByKey, StatsQuery, StuffingSource, WindowStats
from projections.alert_scope import scope_sql
from projections.windows import plan_nested
from schemas.alerts import IP_SUBJECT_PREFIX
from schemas.requests import KEYLESS_OUTCOMES
from schemas.utc import as_utc

KEYED_BAD = ("revoked", "expired", "deleted")
"""Verdicts on a key of the account that make it a bad key presented."""
OUTCOME_ORDER = (*KEYED_BAD, *sorted(KEYLESS_OUTCOMES))
"""The per-verdict presentations, in the order of `StuffingSource.outcomes`."""

_KEYED = "outcome IN ('revoked', 'expired', 'deleted')"
_KEYLESS = "outcome IN ('malformed', 'unknown') AND presented_digest != ''"

_SQL = f"""
SELECT client_ip, account_id, keys, digests, revoked, expired, deleted, malformed, unknown,
       first_at, last_at, first_keyless, last_keyless
FROM (
    SELECT client_ip, account_id, keys, revoked, expired, deleted, first_at, last_at,
           maxIf(g_digests, account_id = '') OVER ip AS digests,
           maxIf(g_malformed, account_id = '') OVER ip AS malformed,
           maxIf(g_unknown, account_id = '') OVER ip AS unknown,
           maxIf(g_first_keyless, account_id = '') OVER ip AS first_keyless,
           maxIf(g_last_keyless, account_id = '') OVER ip AS last_keyless
    FROM (
        SELECT client_ip, account_id,
               uniqExactIf(key_id, {_KEYED}) AS keys,
               sumIf(count, outcome = 'revoked') AS revoked,
               sumIf(count, outcome = 'expired') AS expired,
               sumIf(count, outcome = 'deleted') AS deleted,
               minIf(occurred_at, {_KEYED}) AS first_at,
               maxIf(occurred_at, {_KEYED}) AS last_at,
               uniqExactIf(presented_digest, {_KEYLESS}) AS g_digests,
               sumIf(count, outcome = 'malformed' AND presented_digest != '') AS g_malformed,
               sumIf(count, outcome = 'unknown' AND presented_digest != '') AS g_unknown,
               minIf(occurred_at, {_KEYLESS}) AS g_first_keyless,
               maxIf(occurred_at, {_KEYLESS}) AS g_last_keyless
        FROM verification_outcomes
        WHERE occurred_at >= {{start:DateTime64(3, 'UTC')}}
          AND occurred_at < {{end:DateTime64(3, 'UTC')}}
          AND client_ip != ''
          AND (({{scope}}) OR (account_id = '' AND {_KEYLESS}))
        GROUP BY client_ip, account_id
    )
    WINDOW ip AS (PARTITION BY client_ip)
)
WHERE account_id != '' AND keys + digests > 0
"""


def stuffing_sql(query: StatsQuery, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a `credential_stuffing` query (the window ending with
    `now`'s minute)."""
    plan = plan_nested([timedelta(seconds=query.window_s)], as_utc(now))
    params: dict[str, Any] = {"start": plan.starts[0], "end": plan.end}
    return _SQL.replace("{scope}", scope_sql(query, params)), params


def _source(row: Sequence[Any]) -> StuffingSource:
    ip, _, keys, digests, revoked, expired, deleted, malformed, unknown = row[:9]
    first_at, last_at, first_keyless, last_keyless = row[9:]
    counts = dict(zip(OUTCOME_ORDER, (revoked, expired, deleted, malformed, unknown), strict=True))
    times = []
    if int(keys):
        times += [as_utc(first_at), as_utc(last_at)]
    if int(digests):
        times += [as_utc(first_keyless), as_utc(last_keyless)]
    outcomes = tuple((name, int(n)) for name, n in counts.items() if int(n))
    return StuffingSource(
        client_ip=str(ip),
        distinct_keys=int(keys) + int(digests),
        attempts=sum(n for _, n in outcomes),
        outcomes=outcomes,
        first_at=min(times),
        last_at=max(times),
    )


def stuffing_stats(client: Client, query: StatsQuery, now: datetime) -> StatsByKey:
    """(account_id, `ip:<address>`) -> `WindowStats(requests=distinct bad keys,
    stuffing=...)` for every client IP with at least one bad key attributed to an account
    of the scope (see the module docstring). `credential_stuffing` rules are account-wide:
    `query.accounts`."""
    if not query.accounts:
        return {}
    sql, params = stuffing_sql(query, now)
    out: StatsByKey = {}
    for row in client.query(sql, parameters=params).result_rows:
        source = _source(row)
        subject = f"{IP_SUBJECT_PREFIX}{source.client_ip}"
        out[(str(row[1]), subject)] = WindowStats(source.distinct_keys, stuffing=source)
    return out
