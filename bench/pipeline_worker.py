"""The keypulse side of the pipeline benchmark: the real worker (`running_worker`) in-process.

`keypulse_throughput` times one worker from the start of consumption (partitions
assigned) until every expected event is counted, then checks ClickHouse.
`keypulse_freshness` runs the worker while a steady producer runs elsewhere and records
when each probe key becomes visible in `usage_rollup` (minute rows), polling from this process.
"""

from __future__ import annotations

import asyncio
import cProfile
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.pipeline_data import PROBE_ACCOUNT
from infra.clickhouse import make_client
from infra.settings import Settings, load_settings
from infra.wiring import Worker, running_worker


class Breakdown:
    """Where the ingest agent's time goes, by timing wrappers around three of its methods.

    `wait_s`: the agent waits for the first record of a take (or the loop is busy
    elsewhere); `process_s`: inside `_take` (a take, from its first record until its
    last block went to the writer, while later records join it); `decode_s`: awaiting
    the decode thread
    (`_next_block`: JSON, validation, time bounds, columns); `write_s`: writing blocks
    (`_land`: ingest log + data insert). A block is written while the next one is
    decoded, so `decode_s + write_s` may exceed `process_s` by `overlap_s`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.takes = 0
        self.records = 0
        self.wait_s = 0.0
        self.decode_s = 0.0
        self.write_s = 0.0
        self.process_s = 0.0
        self.last_end: float | None = None

    def install(self) -> None:
        from streams.worker.ingest_agent import IngestAgent

        take = IngestAgent._take
        next_block = IngestAgent._next_block
        land = IngestAgent._land
        me = self

        async def timed_take(agent: Any, first: Any, arrivals: Any) -> Any:
            began = time.perf_counter()
            if me.last_end is not None:
                me.wait_s += began - me.last_end
            me.takes += 1
            try:
                taken = await take(agent, first, arrivals)
                me.records += len(taken[0])
                return taken
            finally:
                me.last_end = time.perf_counter()
                me.process_s += me.last_end - began

        async def timed_next_block(agent: Any, steps: Any) -> Any:
            began = time.perf_counter()
            try:
                return await next_block(agent, steps)
            finally:
                me.decode_s += time.perf_counter() - began

        async def timed_land(agent: Any, block: Any) -> None:
            began = time.perf_counter()
            try:
                await land(agent, block)
            finally:
                me.write_s += time.perf_counter() - began

        setattr(IngestAgent, "_take", timed_take)  # noqa: B010
        setattr(IngestAgent, "_next_block", timed_next_block)  # noqa: B010
        setattr(IngestAgent, "_land", timed_land)  # noqa: B010

    def start(self) -> None:
        """Clock start: time until the first take counts as waiting."""
        self.reset()
        self.last_end = time.perf_counter()

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        return {
            "takes": self.takes,
            "records_per_take": round(self.records / self.takes, 1) if self.takes else 0,
            "wait_s": round(self.wait_s, 3),
            "process_s": round(self.process_s, 3),
            "decode_s": round(self.decode_s, 3),
            "write_s": round(self.write_s, 3),
            "overlap_s": round(max(0.0, self.decode_s + self.write_s - self.process_s), 3),
            "unaccounted_s": round(elapsed_s - self.wait_s - self.process_s, 3),
        }


def _log(msg: str) -> None:
    print(f"[keypulse] {msg}", file=sys.stderr, flush=True)


def bench_settings(
    data_dir: str, bootstrap: str, controller_port: int, prefix: str, group: str
) -> Settings:
    return load_settings(
        data_dir=Path(data_dir),
        kafka={
            "bootstrap_servers": bootstrap,
            "controller_port": controller_port,
            "topic_prefix": prefix,
            "consumer_group": group,
        },
    )


async def _wait_assigned(worker: Worker, timeout_s: float = 120.0) -> None:
    consumer = worker.app.app.consumer
    deadline = time.monotonic() + timeout_s
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker got no partitions")
        await asyncio.sleep(0.005)


def _ingest(worker: Worker) -> Any:
    ingest = worker.app.ingest
    if ingest is None:
        raise RuntimeError("the worker has no ingest agent")
    return ingest


def _insert_summary(stats: Any, elapsed_s: float) -> dict[str, Any]:
    inserts = list(stats.insert_seconds)
    return {
        "blocks": stats.blocks,
        "events_per_block": round(stats.events / stats.blocks) if stats.blocks else 0,
        "insert_s_total": round(sum(inserts), 3) if len(inserts) == stats.blocks else None,
        "insert_share": round(sum(inserts) / elapsed_s, 3)
        if elapsed_s and len(inserts) == stats.blocks
        else None,
        "insert_ms_median": round(statistics.median(inserts) * 1000, 1) if inserts else None,
        "dead_letters": stats.dead_letters,
    }


def _counts(settings: Settings) -> tuple[int, int]:
    client = make_client(settings)
    try:
        raw = client.query("SELECT count() FROM requests_raw").result_rows[0][0]
        minute = client.query(
            "SELECT sum(requests) FROM usage_rollup "
            f"WHERE tier = 'minute' AND account_id != '{PROBE_ACCOUNT}'"
        ).result_rows[0][0]
        return int(raw), int(minute)
    finally:
        client.close()


async def keypulse_throughput(
    settings: Settings,
    events: int,
    ready_file: str | None = None,
    profile_file: str | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Consume until `events` are counted; the clock starts at partition assignment."""
    launched = time.monotonic()
    profiler = cProfile.Profile() if profile_file else None
    breakdown = Breakdown()
    breakdown.install()
    async with running_worker(settings) as worker:
        ingest = _ingest(worker)
        await _wait_assigned(worker)
        breakdown.start()
        t0 = time.monotonic()
        wall0 = time.time()
        early = ingest.stats.events
        if ready_file:
            Path(ready_file).write_text(f"{wall0}\n")
        _log(f"assigned after {t0 - launched:.1f} s start-up ({early} events already counted)")
        if profiler:
            profiler.enable()
        next_report = t0 + 5
        while ingest.stats.events < events:
            now = time.monotonic()
            if now - t0 > timeout_s:
                raise TimeoutError(f"only {ingest.stats.events}/{events} events after {timeout_s}s")
            if now >= next_report:
                rate = ingest.stats.events / (now - t0)
                _log(f"{ingest.stats.events}/{events} events ({rate:,.0f}/s)")
                next_report += 5
            await asyncio.sleep(0.005)
        t1 = time.monotonic()
        wall1 = time.time()
        if profiler and profile_file:
            profiler.disable()
            profiler.dump_stats(profile_file)
        counted = ingest.stats.events
        summary = _insert_summary(ingest.stats, t1 - t0)
    raw, minute = _counts(settings)
    elapsed = t1 - t0
    _log(f"{counted} events in {elapsed:.2f} s = {counted / elapsed:,.0f}/s; raw rows {raw}")
    if raw != events or minute != events:
        raise RuntimeError(f"expected {events} rows, requests_raw has {raw}, minute rows {minute}")
    return {
        "events": counted,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(counted / elapsed),
        "startup_s": round(t0 - launched, 3),
        "counted_before_clock": early,
        "wall_start": wall0,
        "wall_end": wall1,
        "requests_raw": raw,
        **summary,
        "breakdown": breakdown.summary(elapsed),
    }


async def keypulse_freshness(
    settings: Settings, ready_file: str, stop_file: str, poll_s: float = 0.02
) -> dict[str, Any]:
    """Record when each probe key becomes visible in the minute rows (wall clock).

    Runs until `stop_file` exists and every probe it announces was seen (or 15 s after
    it appeared). A probe counts as visible at the end of the first query that returns it.
    """
    launched = time.monotonic()
    seen: dict[str, float] = {}
    polls = 0
    async with running_worker(settings) as worker:
        ingest = _ingest(worker)
        await _wait_assigned(worker)
        _log(f"freshness worker assigned after {time.monotonic() - launched:.1f} s")
        client = make_client(settings)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe-poll")
        loop = asyncio.get_running_loop()
        query = (
            "SELECT DISTINCT key_id FROM usage_rollup "
            f"WHERE tier = 'minute' AND account_id = '{PROBE_ACCOUNT}'"
        )

        def poll() -> list[str]:
            return [row[0] for row in client.query(query).result_rows]

        try:
            Path(ready_file).write_text(f"{time.time()}\n")
            stop_seen_at: float | None = None
            expected = -1
            while True:
                keys = await loop.run_in_executor(executor, poll)
                now = time.time()
                polls += 1
                for key in keys:
                    seen.setdefault(key, now)
                if stop_seen_at is None and Path(stop_file).exists():
                    expected = int(Path(stop_file).read_text().strip() or -1)
                    stop_seen_at = time.monotonic()
                if stop_seen_at is not None and (
                    len(seen) >= expected or time.monotonic() - stop_seen_at > 15
                ):
                    break
                await asyncio.sleep(poll_s)
        finally:
            executor.shutdown(wait=True)
            client.close()
        summary = _insert_summary(ingest.stats, 1.0)
        events = ingest.stats.events
    _log(f"freshness worker: {len(seen)} probes seen, {events} events, {polls} polls")
    return {
        "seen": seen,
        "events": events,
        "polls": polls,
        "blocks": summary["blocks"],
        "events_per_block": summary["events_per_block"],
        "insert_ms_median": summary["insert_ms_median"],
    }
