"""Whether a key is in use: last used, last-used client IP, uses in the last 5 min and hour.

`key_activity(client, account_id, key_ids, now)` answers for many keys in one query, from
both kinds of use:

- request events (`requests_raw`, read for the last hour only; the newest request and
  its client IP per key from `key_ip_seen`, kept since ingest began);
- valid verifications (`verification_outcomes`, counted per key and minute by the
  verifier's `OutcomeRecorder`; the newest and its client IP from `key_verified_last`).

`last_used_at` / `last_used_ip` are those of the newest use of either kind.
`requests_5m` / `requests_1h` count request events; `verifications_5m` /
`verifications_1h` count valid verifications (an API that records both sees each call
twice, once in each; the counts are kept apart so neither is doubled). Windows end at
`now` and include it; a verification count is placed at its minute's newest verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from schemas.utc import as_utc, to_epoch_ms

FIVE_MINUTES = timedelta(minutes=5)
ONE_HOUR = timedelta(hours=1)
_EPOCH_MS = 0


@dataclass(frozen=True)
class KeyActivity:
    """One key's use; `last_used_at` None (and `last_used_ip` None): never used."""

    last_used_at: datetime | None
    last_used_ip: str | None
    requests_5m: int
    requests_1h: int
    verifications_5m: int
    verifications_1h: int


UNUSED = KeyActivity(None, None, 0, 0, 0, 0)

_WHERE = "account_id = {account:String} AND key_id IN {keys:Array(String)}"
_WINDOW = (
    "occurred_at >= fromUnixTimestamp64Milli({hour_ago:Int64}, 'UTC') "
    "AND occurred_at <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')"
)
_RECENT = "occurred_at >= fromUnixTimestamp64Milli({five_ago:Int64}, 'UTC')"
_NEVER = "fromUnixTimestamp64Milli(toInt64(0), 'UTC')"

_QUERY = f"""
SELECT key_id, max(at), argMax(ip, at), sum(r5), sum(r1h), sum(v5), sum(v1h)
FROM (
    SELECT key_id, {_NEVER} AS at, '' AS ip,
           toUInt64(countIf({_RECENT})) AS r5, toUInt64(count()) AS r1h,
           toUInt64(0) AS v5, toUInt64(0) AS v1h
    FROM requests_raw WHERE {_WHERE} AND {_WINDOW} GROUP BY key_id
    UNION ALL
    SELECT key_id, max(last_seen) AS at, argMax(client_ip, last_seen) AS ip,
           toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
    FROM key_ip_seen WHERE {_WHERE} GROUP BY key_id
    UNION ALL
    SELECT key_id, max(last_verified) AS at, argMaxMerge(last_ip) AS ip,
           toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
    FROM key_verified_last WHERE {_WHERE} GROUP BY key_id
    UNION ALL
    SELECT key_id, {_NEVER} AS at, '' AS ip, toUInt64(0), toUInt64(0),
           toUInt64(sumIf(count, {_RECENT})) AS v5, toUInt64(sum(count)) AS v1h
    FROM verification_outcomes
    WHERE {_WHERE} AND outcome = 'valid' AND {_WINDOW} GROUP BY key_id
)
GROUP BY key_id
"""


def key_activity(
    client: Client, account_id: str, key_ids: list[str], now: datetime
) -> dict[str, KeyActivity]:
    """The activity of each of `key_ids` of `account_id` (every id is in the answer;
    `UNUSED` for a key never used), in one query whatever the number of keys."""
    ids = sorted(set(key_ids))
    if not ids:
        return {}
    now_ms = to_epoch_ms(as_utc(now))
    rows = client.query(
        _QUERY,
        parameters={
            "account": account_id,
            "keys": ids,
            "now": now_ms,
            "five_ago": now_ms - int(FIVE_MINUTES.total_seconds() * 1000),
            "hour_ago": now_ms - int(ONE_HOUR.total_seconds() * 1000),
        },
    ).result_rows
    found: dict[str, KeyActivity] = {}
    for key_id, at, ip, r5, r1h, v5, v1h in rows:
        last = as_utc(at)
        used = to_epoch_ms(last) > _EPOCH_MS
        found[str(key_id)] = KeyActivity(
            last_used_at=last if used else None,
            last_used_ip=str(ip) if used and ip else None,
            requests_5m=int(r5),
            requests_1h=int(r1h),
            verifications_5m=int(v5),
            verifications_1h=int(v1h),
        )
    return {key_id: found.get(key_id, UNUSED) for key_id in ids}
