"""The baseline: a straightforward faust sink into the same ClickHouse tables.

One flat JSON event per Kafka message, decoded by faust into a `faust.Record`; an agent
takes up to 1,000 values (or whatever arrived within 1 s) and inserts them as rows
(a list of lists) with one clickhouse-connect insert per take, off the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import faust

from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from projections.migrate import migrate

SINK_COLUMNS = (
    "event_id",
    "occurred_at",
    "key_id",
    "account_id",
    "method",
    "route",
    "status",
    "latency_ms",
    "client_ip",
    "bytes_out",
    "is_render",
    "watermarked",
)


def _log(msg: str) -> None:
    print(f"[faust-sink] {msg}", file=sys.stderr, flush=True)


class RequestEvent(faust.Record, serializer="json"):
    event_id: str
    occurred_at_ms: int
    key_id: str
    account_id: str
    method: str
    route: str
    status: int
    latency_ms: float
    client_ip: str
    bytes_out: int
    is_render: bool
    watermarked: bool


async def faust_sink_throughput(
    settings: Settings, topic: str, events: int, timeout_s: float = 600.0
) -> dict[str, Any]:
    client = make_client(settings)
    migrate(client, migration_context(settings))
    app = faust.App(
        settings.kafka.consumer_group,
        broker=",".join(f"kafka://{s}" for s in settings.kafka.bootstrap_servers.split(",")),
        datadir=str(Path(settings.data_dir) / "faust"),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(topic, value_type=RequestEvent)
    counted = 0
    loop = asyncio.get_running_loop()

    def insert(rows: list[list[Any]]) -> None:
        client.insert("requests_raw", rows, column_names=SINK_COLUMNS, settings={"async_insert": 0})

    async def sink(stream: Any) -> None:
        nonlocal counted
        async for values in stream.take(1000, within=1):
            rows = [
                [
                    v.event_id,
                    v.occurred_at_ms,
                    v.key_id,
                    v.account_id,
                    v.method,
                    v.route,
                    v.status,
                    v.latency_ms,
                    v.client_ip,
                    v.bytes_out,
                    v.is_render,
                    v.watermarked,
                ]
                for v in values
            ]
            await loop.run_in_executor(None, insert, rows)
            counted += len(rows)

    app.agent(source, name="bench.sink", concurrency=1)(sink)
    launched = time.monotonic()
    try:
        await app.start()
        while not app.consumer.assignment():
            if time.monotonic() - launched > 120:
                raise TimeoutError("the faust sink got no partitions")
            await asyncio.sleep(0.005)
        t0 = time.monotonic()
        _log(f"assigned after {t0 - launched:.1f} s start-up ({counted} already counted)")
        next_report = t0 + 5
        while counted < events:
            now = time.monotonic()
            if now - t0 > timeout_s:
                raise TimeoutError(f"only {counted}/{events} events after {timeout_s}s")
            if now >= next_report:
                _log(f"{counted}/{events} events ({counted / (now - t0):,.0f}/s)")
                next_report += 5
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - t0
    finally:
        await app.stop()
    try:
        raw = int(client.query("SELECT count() FROM requests_raw").result_rows[0][0])
    finally:
        client.close()
    _log(f"{counted} events in {elapsed:.2f} s = {counted / elapsed:,.0f}/s; raw rows {raw}")
    if raw != events:
        raise RuntimeError(f"expected {events} rows, requests_raw has {raw}")
    return {
        "events": counted,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(counted / elapsed),
        "startup_s": round(t0 - launched, 3),
    }
