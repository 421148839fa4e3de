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
from dataclasses import dataclass
from typing import Any

import orjson

from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from projections.migrate import migrate
from projections.writers import RAW_COLUMNS
from schemas.request_columns import COLUMNS

FETCH_BYTES = 32 * 1024 * 1024
SOURCES = (*COLUMNS, "src_partition", "src_offset")

Block = dict[str, list[Any]]


def _log(msg: str) -> None:
    print(f"[ceiling] {msg}", file=sys.stderr, flush=True)


def _empty() -> Block:
    return {name: [] for name in SOURCES}


def _insert_arrow(client: Any, cols: Block) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]

    arrays: dict[str, Any] = {
        target: cols[source] for target, source in zip(RAW_COLUMNS, SOURCES, strict=True)
    }
    arrays["occurred_at"] = pa.array(cols["occurred_at_ms"], type=pa.timestamp("ms", tz="UTC"))
    client.insert_arrow("requests_raw", pa.table(arrays), settings={"async_insert": 0})


def _insert_native(client: Any, cols: Block) -> None:
    client.insert(
        "requests_raw",
        [cols[n] for n in SOURCES],
        column_names=RAW_COLUMNS,
        column_oriented=True,
        settings={"async_insert": 0},
    )


@dataclass
class _Sink:
    """Cuts fetched records into blocks and inserts each off the event loop, timing it all."""

    client: Any
    arrow: bool
    max_events: int
    executor: ThreadPoolExecutor
    total: int = 0
    blocks: int = 0
    fetch_s: float = 0.0
    decode_s: float = 0.0
    insert_s: float = 0.0

    def _insert(self, cols: Block) -> float:
        began = time.perf_counter()
        (_insert_arrow if self.arrow else _insert_native)(self.client, cols)
        return time.perf_counter() - began

    async def _flush(self, cols: Block, count: int) -> None:
        loop = asyncio.get_running_loop()
        self.insert_s += await loop.run_in_executor(self.executor, self._insert, cols)
        self.blocks += 1
        self.total += count

    async def take(self, fetched: dict[Any, list[Any]]) -> None:
        """One block per `max_events`, cut before a record that would overflow it."""
        cols, count = _empty(), 0
        for tp, messages in fetched.items():
            for msg in messages:
                began = time.perf_counter()
                body = orjson.loads(msg.value)["columns"]
                self.decode_s += time.perf_counter() - began
                n = len(body["event_id"])
                if count and count + n > self.max_events:
                    await self._flush(cols, count)
                    cols, count = _empty(), 0
                for name in COLUMNS:
                    cols[name].extend(body[name])
                cols["src_partition"].extend([tp.partition] * n)
                cols["src_offset"].extend([msg.offset] * n)
                count += n
        if count:
            await self._flush(cols, count)

    def result(self, elapsed: float) -> dict[str, Any]:
        return {
            "events": self.total,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(self.total / elapsed),
            "blocks": self.blocks,
            "events_per_block": round(self.total / self.blocks) if self.blocks else 0,
            "insert_s_total": round(self.insert_s, 3),
            "insert_share": round(self.insert_s / elapsed, 3),
            "breakdown": {
                "fetch_wait_s": round(self.fetch_s, 3),
                "decode_s": round(self.decode_s, 3),
                "insert_s": round(self.insert_s, 3),
                "other_s": round(elapsed - self.fetch_s - self.decode_s - self.insert_s, 3),
            },
            "insert": "arrow" if self.arrow else "native",
        }


async def _consume(consumer: Any, sink: _Sink, events: int, timeout_s: float) -> float:
    """Take fetches into `sink` until `events` are inserted; return the elapsed seconds."""
    t0 = time.monotonic()
    next_report = t0 + 5
    while sink.total < events:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"only {sink.total}/{events} events after {timeout_s}s")
        began = time.perf_counter()
        fetched = await consumer.getmany(timeout_ms=500)
        sink.fetch_s += time.perf_counter() - began
        await sink.take(fetched)
        now = time.monotonic()
        if now >= next_report:
            _log(f"{sink.total}/{events} events ({sink.total / (now - t0):,.0f}/s)")
            next_report += 5
    return time.monotonic() - t0


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
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=FETCH_BYTES * 2,
    )
    sink = _Sink(client=client, arrow=arrow, max_events=max_events, executor=executor)
    await consumer.start()
    try:
        elapsed = await _consume(consumer, sink, events, timeout_s)
    finally:
        await consumer.stop()
        executor.shutdown(wait=True)
    try:
        raw = int(client.query("SELECT count() FROM requests_raw").result_rows[0][0])
        version = str(client.command("SELECT version()"))
    finally:
        client.close()
    _log(f"{sink.total} events in {elapsed:.2f} s = {sink.total / elapsed:,.0f}/s; raw rows {raw}")
    if raw != events:
        raise RuntimeError(f"expected {events} rows, requests_raw has {raw}")
    return {**sink.result(elapsed), "clickhouse_version": version}
