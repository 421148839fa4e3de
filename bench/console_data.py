"""`bench.console`'s traffic: 30 days of requests for one account's keys, made by
ClickHouse itself (`INSERT INTO requests_raw ... SELECT ... FROM numbers(...)`, as
`bench.misuse_cycle` does), so every materialized view (`usage_rollup`, `key_last_used`,
`key_ip_seen`, `key_ip_day`, `key_status_rollup`) runs on insert as in production.

Run as its own process (`python -m bench.console_data PLAN.json`; chDB allows one process
per data directory and the worker serving the console takes it next): it migrates the
database under the plan's `data_dir`, inserts one day of traffic per statement, merges the
rollups as 30 days of background merges would have (`OPTIMIZE ... FINAL`), and prints one
JSON line: the events inserted and the truth for the listing, each key's request count
(`count()` over `requests_raw`, independent of the rollups the listing reads).

Shape: 30 % of the requests spread evenly over the keys (every key is busy in most hours:
the rollups hold a row for nearly every key and hour, the listing's worst case), 70 %
skewed towards a few hot keys (`k = keys * u^2.5`); days grow towards the present; each
day has a daily curve (a warp of the time of day, busiest to quietest hour about 3:1); 1.5 % 5xx,
5 % 4xx; one to four client IPs per key. The plan's keys are those the key service made.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from bench.api import ROLLUPS, _settle
from infra.clickhouse import make_client, migration_context
from infra.settings import load_settings
from projections.migrate import migrate

DAY_S = 86_400


@dataclass(frozen=True)
class TrafficPlan:
    data_dir: str
    account_id: str
    key_ids: list[str]
    test_keys: list[bool]
    end_s: int
    """The newest request's time (epoch seconds): the bench's `now` when it planned."""
    events: int
    days: int = 30
    margin_s: int = 7_200
    """The oldest request is this much younger than `days` before `end_s`, so the 30-day
    window still holds every request while the bench measures (within `margin_s`)."""

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> TrafficPlan:
        return cls(**json.loads(path.read_text()))


def day_events(total: int, days: int) -> list[int]:
    """Requests per day, oldest first, growing linearly to 1.67x the first day's."""
    weights = [0.6 + 0.4 * d / max(1, days - 1) for d in range(days)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[-1] += total - sum(counts)
    return counts


_RAW = """
INSERT INTO requests_raw (event_id, occurred_at, account_id, key_id, method, route, status,
    latency_ms, client_ip, bytes_out, is_render, watermarked, src_partition, src_offset)
SELECT generateUUIDv4(),
       toDateTime64({start:Int64} + {span:Float64} * x, 3, 'UTC'),
       {account:String},
       {ids:Array(String)}[k + 1],
       if(h % 10 < 3, 'POST', 'GET'),
       ['/v1/render', '/v1/templates', '/v1/assets', '/v1/usage'][1 + intDiv(h, 10) % 4],
       multiIf(h % 1000 < 15, [500, 502, 503][1 + h % 3],
               h % 1000 < 65, [400, 401, 404, 429][1 + h % 4], 200),
       20 * exp(2.5 * (intDiv(h, 1000) % 1000) / 1000),
       concat('10.', toString(intDiv(k, 250) % 250), '.', toString(k % 250), '.',
              toString(1 + intDiv(h, 100000) % 4)),
       200 + intDiv(h, 7) % 60000,
       intDiv(h, 10) % 4 = 0,
       intDiv(h, 10) % 4 = 0 AND {tests:Array(UInt8)}[k + 1] = 1,
       0, 0
FROM (
    SELECT number, cityHash64(number, {day:UInt64}) AS h,
           cityHash64(h) % 1000000 / 1000000 AS u,
           if(h % 100 < 30, intDiv(h, 1000000) % {keys:UInt64},
              least({keys:UInt64} - 1, toUInt64(floor({keys:UInt64} * pow(u, 2.5))))) AS k,
           (number + 0.5) / {n:UInt64} AS t,
           t - 0.5 * sin(2 * pi() * t) / (2 * pi()) AS x
    FROM numbers({n:UInt64})
)
"""
"""One day of requests: `t` spreads them evenly over the day, `x` warps it (density
1 / (1 - 0.5 cos 2πt): three times as dense at the day's ends as in its middle)."""


def insert_traffic(client: Client, plan: TrafficPlan, log: Any = sys.stderr) -> int:
    """Insert the plan's requests, one statement per day; returns how many."""
    began = time.perf_counter()
    start = plan.end_s - plan.days * DAY_S + plan.margin_s
    span = (plan.end_s - start) / plan.days
    total = 0
    for day, n in enumerate(day_events(plan.events, plan.days)):
        params: dict[str, Any] = {
            "start": int(start + day * span),
            "span": float(span),
            "account": plan.account_id,
            "ids": plan.key_ids,
            "tests": [int(t) for t in plan.test_keys],
            "keys": len(plan.key_ids),
            "day": day,
            "n": n,
        }
        client.command(_RAW, parameters=params)
        total += n
        if day % 5 == 4 or day == plan.days - 1:
            took = time.perf_counter() - began
            print(f"traffic: {total:,} requests, {day + 1} days ({took:.0f} s)", file=log)
    return total


def per_key_counts(client: Client, account_id: str) -> dict[str, int]:
    rows = client.query(
        "SELECT key_id, count() FROM requests_raw WHERE account_id = {a:String} GROUP BY key_id",
        parameters={"a": account_id},
    ).result_rows
    return {str(k): int(n) for k, n in rows}


def load(plan: TrafficPlan) -> dict[str, Any]:
    settings = load_settings(_env_file=None, data_dir=Path(plan.data_dir))
    client = make_client(settings)
    try:
        migrate(client, migration_context(settings))
        began = time.perf_counter()
        events = insert_traffic(client, plan)
        insert_s = time.perf_counter() - began
        for table in ROLLUPS:
            client.command(f"OPTIMIZE TABLE {table} FINAL")
        parts = _settle(client, timeout_s=300)
        return {
            "events": events,
            "insert_s": round(insert_s, 1),
            "merge_s": round(time.perf_counter() - began - insert_s, 1),
            "parts": {t: parts.get(t, 0) for t in ("requests_raw", *ROLLUPS)},
            "requests_by_key": per_key_counts(client, plan.account_id),
        }
    finally:
        client.close()


def main() -> None:
    print(json.dumps(load(TrafficPlan.read(Path(sys.argv[1])))))


if __name__ == "__main__":
    main()
