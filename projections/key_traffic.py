"""One key's traffic in a window beyond the usage rollup: its client addresses and its
verification outcomes (the console's key page).

- `recent_ips(client, account_id, key_id, since, limit)`: the addresses the key sent
  requests from at or after `since`, newest first, from `key_ip_day` (one row per key, UTC
  day and address, migration 0017) in ONE query. `requests` and `first_seen` cover the
  whole UTC days from `since`'s day on (the table keeps days, not minutes), so for a 24 h
  window they may include requests of up to a day before it; `last_seen` is exact.
  Requests without a client IP are not in the table.
- `outcome_counts(client, account_id, key_id, start, end)`: the key's verification
  verdicts in [start, end) by outcome (`verification_outcomes`, kept 30 days; a row of
  valid verdicts counts `count` of them), in one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client

from schemas.utc import as_utc, to_epoch_ms

__all__ = ["ClientIp", "RecentIps", "outcome_counts", "recent_ips"]

_KEY = "account_id = {account:String} AND key_id = {key:String}"
_SINCE = "fromUnixTimestamp64Milli({since:Int64}, 'UTC')"

_IPS = f"""
SELECT client_ip, min(first_seen), max(last_seen) AS last, sum(requests), count() OVER ()
FROM key_ip_day
WHERE {_KEY} AND day >= toDate({_SINCE})
GROUP BY client_ip
HAVING last >= {_SINCE}
ORDER BY last DESC, client_ip
LIMIT {{limit:UInt32}}
"""

_OUTCOMES = f"""
SELECT outcome, sum(count)
FROM verification_outcomes
WHERE {_KEY}
  AND occurred_at >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')
  AND occurred_at < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')
GROUP BY outcome
"""


@dataclass(frozen=True)
class ClientIp:
    """One address of a key: its first and last request and the requests from it, over
    the UTC days from the window's first day."""

    ip: str
    first_seen: datetime
    last_seen: datetime
    requests: int


@dataclass(frozen=True)
class RecentIps:
    """The newest `limit` addresses (`ips`) and how many there were in all (`total`)."""

    ips: tuple[ClientIp, ...]
    total: int


def recent_ips(
    client: Client, account_id: str, key_id: str, since: datetime, limit: int = 20
) -> RecentIps:
    rows = client.query(
        _IPS,
        parameters={
            "account": account_id,
            "key": key_id,
            "since": to_epoch_ms(as_utc(since)),
            "limit": limit,
        },
    ).result_rows
    ips = tuple(
        ClientIp(str(ip), as_utc(first), as_utc(last), int(n)) for ip, first, last, n, _ in rows
    )
    return RecentIps(ips, int(rows[0][4]) if rows else 0)


def outcome_counts(
    client: Client, account_id: str, key_id: str, start: datetime, end: datetime
) -> dict[str, int]:
    """Verdicts by outcome (only the outcomes that occurred)."""
    rows = client.query(
        _OUTCOMES,
        parameters={
            "account": account_id,
            "key": key_id,
            "start": to_epoch_ms(as_utc(start)),
            "end": to_epoch_ms(as_utc(end)),
        },
    ).result_rows
    return {str(outcome): int(n) for outcome, n in rows}
