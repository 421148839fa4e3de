"""The ceiling: the least a pipeline from the requests topic into ClickHouse must do.

An aiokafka `getmany` loop (no consumer group: every partition, no commits), `orjson.loads` of
each batch record, and one column-oriented clickhouse-connect insert (off the event
loop) per block of at most `max_events` rows into the same `requests_raw` table and its
materialized views. No validation, no dead letters, no offset tracking, no faust.
Blocks are cut like the ingest agent cuts them: before a record that would overflow
`max_events`, and at the end of each fetched batch.

With `arrow=True` the block goes through `insert_arrow` instead (pyarrow builds the
columns in C++; chDB reads Arrow natively), a second reference for what the insert path
allows. `occurred_at` must then be an Arrow timestamp: an int64 column is not read as
DateTime64(3) milliseconds, and the rows vanish by TTL while the rollups count them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from projections.migrate import migrate
from projections.writers import RAW_COLUMNS
from schemas.request_columns import COLUMNS

FETCH_BYTES = 32 * 1024 * 1024


def _log(msg: str) -> None:
    print(f"[ceiling] {msg}", file=sys.stderr, flush=True)


def _empty() -> dict[str, list[Any]]:
    return {name: [] for name in (*COLUMNS, "src_partition", "src_offset")}


def _insert_arrow(client: Any, cols: dict[str, list[Any]]) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]

    sources = (*COLUMNS, "src_partition", "src_offset")
    arrays: dict[str, Any] = {
        target: cols[source] for target, source in zip(RAW_COLUMNS, sources, strict=True)
    }
    arrays["occurred_at"] = pa.array(cols["occurred_at_ms"], type=pa.timestamp("ms", tz="UTC"))
    client.insert_arrow("requests_raw", pa.table(arrays), settings={"async_insert": 0})


async def ceiling_throughput(
    settings: Settings,
    topic: str,
    events: int,
    max_events: int,
    arrow: bool = False,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    client = make_client(settings)
    migrate(client, migration_context(settings))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ceiling-insert")
    loop = asyncio.get_running_loop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES * 2,
    )
    names = [*COLUMNS, "src_partition", "src_offset"]
    insert_s = 0.0
    fetch_s = 0.0
    decode_s = 0.0
    blocks = 0

    def insert(cols: dict[str, list[Any]]) -> float:
        began = time.perf_counter()
        if arrow:
            _insert_arrow(client, cols)
            return time.perf_counter() - began
        client.insert(
            "requests_raw",
            [cols[n] for n in names],
            column_names=RAW_COLUMNS,
            column_oriented=True,
            settings={"async_insert": 0},
        )
        return time.perf_counter() - began

    await consumer.start()
    try:
        t0 = time.monotonic()
        total = 0
        next_report = t0 + 5
        while total < events:
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"only {total}/{events} events after {timeout_s}s")
            began = time.perf_counter()
            fetched = await consumer.getmany(timeout_ms=500)
            fetch_s += time.perf_counter() - began
            cols = _empty()
            count = 0
            for tp, messages in fetched.items():
                for msg in messages:
                    began = time.perf_counter()
                    body = orjson.loads(msg.value)["columns"]
                    decode_s += time.perf_counter() - began
                    n = len(body["event_id"])
                    if count and count + n > max_events:
                        insert_s += await loop.run_in_executor(executor, insert, cols)
                        blocks += 1
                        total += count
                        cols, count = _empty(), 0
                    for name in COLUMNS:
                        cols[name].extend(body[name])
                    cols["src_partition"].extend([tp.partition] * n)
                    cols["src_offset"].extend([msg.offset] * n)
                    count += n
            if count:
                insert_s += await loop.run_in_executor(executor, insert, cols)
                blocks += 1
                total += count
            now = time.monotonic()
            if now >= next_report:
                _log(f"{total}/{events} events ({total / (now - t0):,.0f}/s)")
                next_report += 5
        elapsed = time.monotonic() - t0
    finally:
        await consumer.stop()
        executor.shutdown(wait=True)
    try:
        raw = int(client.query("SELECT count() FROM requests_raw").result_rows[0][0])
        version = str(client.command("SELECT version()"))
    finally:
        client.close()
    _log(f"{total} events in {elapsed:.2f} s = {total / elapsed:,.0f}/s; raw rows {raw}")
    if raw != events:
        raise RuntimeError(f"expected {events} rows, requests_raw has {raw}")
    return {
        "events": total,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(total / elapsed),
        "blocks": blocks,
        "events_per_block": round(total / blocks) if blocks else 0,
        "insert_s_total": round(insert_s, 3),
        "insert_share": round(insert_s / elapsed, 3),
        "breakdown": {
            "fetch_wait_s": round(fetch_s, 3),
            "decode_s": round(decode_s, 3),
            "insert_s": round(insert_s, 3),
            "other_s": round(elapsed - fetch_s - decode_s - insert_s, 3),
        },
        "insert": "arrow" if arrow else "native",
        "clickhouse_version": version,
    }
