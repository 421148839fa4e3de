"""`bench.misuse`'s `cycle_10k_ms`: one evaluation cycle over 10,000 keys with every
detector on (the default misuse rules of every account, `alerting.defaults`).

The dataset is a second chDB database, cheaper than the quality run's: 10,000 keys in 200
accounts, registered as the key projection writes them, and six weeks of history made by
ClickHouse itself with `INSERT INTO requests_raw ... SELECT ... FROM numbers(...)`, so
every materialized view (`usage_rollup`, `key_ip_day`, `key_status_rollup`) runs on
insert as in production. One request per key and hour (from one of the key's two IPs,
2 % of them errors, some 401) gives every key a row in every hour of the rollups, so the
detectors read as many rollup rows as for busy keys; the last day has 5 requests per
key-hour. Verification outcomes: one `valid` row per key and hour over the last day, and
scattered `unknown`/`revoked` rows from a few hundred client IPs.

Timed: `plan_queries` + every `window_stats` + `evaluate`, at the end of the data, three
cycles in a row with the instances carried; the median is reported, and each query's
time in the median cycle.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.defaults import default_misuse_rules
from alerting.evaluation import evaluate
from alerting.planning import QueryAnswer, QueryKey, plan_queries
from bench.misuse_backfill import TOPIC
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.writers import ClickHouseKeyStore
from schemas.alerts import AlertInstance
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from streams.worker.ports import KeyChanges

ACCOUNTS = 200


def _account(expr: str) -> str:
    return f"concat('acc_cyc', leftPad(toString(intDiv({expr}, 50)), 3, '0'))"


def _key(expr: str) -> str:
    return f"concat('key_cyc', leftPad(toString({expr}), 5, '0'))"


_RAW = """
INSERT INTO requests_raw (event_id, occurred_at, account_id, key_id, method, route, status,
    latency_ms, client_ip, bytes_out, is_render, watermarked, src_partition, src_offset)
SELECT generateUUIDv4(),
       toDateTime64({start:Int64} + intDiv(number, {per_hour:UInt64}) * 3600
                    + (number * 7919) % 3600, 3, 'UTC'),
       {account}, {key}, 'GET', '/v1/render',
       multiIf(number % 50 = 0, 500, number % 97 = 0, 401, 200),
       20 + number % 40,
       concat('10.', toString(intDiv(k, 250) % 250), '.', toString(k % 250), '.',
              toString(1 + intDiv(number, {keys:UInt64}) % 2)),
       1000, false, false, 0, 0
FROM (SELECT number, number % {keys:UInt64} AS k FROM numbers({n:UInt64}))
"""

_OUTCOMES = """
INSERT INTO verification_outcomes (event_id, occurred_at, outcome, account_id, key_id,
    client_ip, count, src_partition, src_offset)
SELECT generateUUIDv4(),
       toDateTime64({start:Int64} + intDiv(number, {keys:UInt64}) * 3600 + number % 3600, 3,
                    'UTC'),
       multiIf(number % 301 = 0, 'revoked', number % 101 = 0, 'unknown', 'valid'),
       if(number % 101 = 0 AND number % 301 != 0, '', {account}),
       if(number % 101 = 0 AND number % 301 != 0, '', {key}),
       concat('10.9.', toString(number % 250), '.', toString(number % 7)),
       1, 0, 0
FROM (SELECT number, number % {keys:UInt64} AS k FROM numbers({n:UInt64}))
"""


def _sql(template: str, names: dict[str, str]) -> str:
    for name, expr in names.items():
        template = template.replace("{" + name + "}", expr)
    return template


def build(client: Client, keys: int, end: datetime, days: int = 42) -> float:
    """Register `keys` keys and write their history ending at `end`; returns seconds."""
    began = time.perf_counter()
    created = end - timedelta(days=days + 1)
    records = [
        KeyRecord(
            account_id=f"acc_cyc{i // 50:03d}",
            key_id=f"key_cyc{i:05d}",
            name=f"cycle bench {i}",
            key_type=KeyType.LIVE,
            access=KeyAccess.FULL,
            status=KeyStatus.ACTIVE,
            secret_hash="sha256:" + f"{i:064x}",
            hint="pk_live_" + f"{i:04d}"[-4:],
            created_at=created,
            created_by="bench.misuse",
            updated_at=created,
            seq=i + 2,
        )
        for i in range(keys)
    ]
    ClickHouseKeyStore(client).save(KeyChanges(keys=records))
    end_s = int(end.timestamp())
    history_h = (days - 1) * 24
    names = {"account": _account("k"), "key": _key("k")}
    spans = [(end_s - days * 86_400, history_h, 1), (end_s - 86_400, 24, 5)]
    for start, hours, per_key in spans:
        per_hour = keys * per_key
        for week in range(0, hours, 168):
            n = min(168, hours - week) * per_hour
            params: dict[str, Any] = {
                "start": start + week * 3600,
                "per_hour": per_hour,
                "keys": keys,
                "n": n,
            }
            client.command(_sql(_RAW, names), parameters=params)
            print(
                f"cycle dataset: {n:,} requests from hour {week} "
                f"({time.perf_counter() - began:.0f} s)",
                file=sys.stderr,
            )
    params = {"start": end_s - 86_400, "keys": keys, "n": keys * 24}
    client.command(_sql(_OUTCOMES, names), parameters=params)
    return time.perf_counter() - began


def time_cycles(client: Client, keys: int, end: datetime, cycles: int = 3) -> dict[str, Any]:
    """Median ms of `cycles` evaluation cycles at `end` with every detector on."""
    accounts = sorted({f"acc_cyc{i // 50:03d}" for i in range(keys)})
    rules = [r for a in accounts for r in default_misuse_rules(a)]
    queries = ClickHouseEvaluationQueries(client, TOPIC)
    instances: dict[str, dict[str, AlertInstance]] = {}
    times: list[float] = []
    per_query: list[dict[str, float]] = []
    for c in range(cycles):
        now = end - timedelta(seconds=5 * (cycles - c))
        began = time.perf_counter()
        specs = plan_queries(rules)
        answers: dict[QueryKey, QueryAnswer] = {}
        spent: dict[str, float] = {}
        for spec in specs:
            q0 = time.perf_counter()
            try:
                answers[(spec.kind, spec.window_s, spec.options)] = QueryAnswer.of(
                    queries.window_stats(spec, now)
                )
            except Exception as exc:
                print(f"cycle: {spec.kind.value} failed: {exc!r}", file=sys.stderr)
                answers[(spec.kind, spec.window_s, spec.options)] = QueryAnswer.failed(
                    type(exc).__name__
                )
            spent[spec.kind.value] = round((time.perf_counter() - q0) * 1000, 1)
        e0 = time.perf_counter()
        result = evaluate(now, rules, answers, instances, {})
        spent["evaluate"] = round((time.perf_counter() - e0) * 1000, 1)
        for inst in result.changed.values():
            instances.setdefault(inst.rule_id, {})[inst.key_id] = inst
        times.append((time.perf_counter() - began) * 1000)
        per_query.append(spent)
    median = statistics.median(times)
    return {
        "cycle_10k_ms": round(median, 1),
        "cycle_10k_runs_ms": [round(t, 1) for t in times],
        "cycle_10k_parts_ms": per_query[times.index(sorted(times)[len(times) // 2])],
        "cycle_10k_rules": len(rules),
        "cycle_10k_keys": keys,
    }
