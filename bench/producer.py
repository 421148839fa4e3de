"""Producer benchmark: `python -m bench.producer` prints one JSON object as its last line.

Starts a broker of its own (LocalKafka under a temporary directory, ports 39292/39293),
creates the topics, and measures in one run:

- `record_median_us`, `record_p99_us`: caller-side cost of `UsageRecorder.record()`,
  each of `LATENCY_CALLS` calls timed with `perf_counter_ns`; the median cost of an empty
  timing pair (`timer_overhead_ns`) is subtracted and also reported (`*_raw_us`).
- `events_per_s`: `THROUGHPUT_EVENTS` events recorded from one thread, then `flush()`;
  acknowledged events divided by the time from the first `record()` to the flush's end.
- `baseline_events_per_s`: kafka-python `send()` of one JSON record per event
  (`BASELINE_EVENTS` events, same producer guarantees), then `flush()`.
"""

from __future__ import annotations

import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kafka
import orjson

from schemas.utc import now_ms
from schemas.uuid7 import uuid7

LATENCY_CALLS = 200_000
THROUGHPUT_EVENTS = 1_000_000
BASELINE_EVENTS = 100_000
BOOTSTRAP = "127.0.0.1:39292"
CONTROLLER_PORT = 39293
PREFIX = "bench."

KEYS = [f"key_bench{i:04d}" for i in range(200)]
IPS = [f"10.{i // 250}.{i % 250}.{(i * 7) % 250}" for i in range(1000)]


def _args(i: int) -> tuple[str, str, str, str, int, float, str]:
    return (
        KEYS[i % 200],
        f"acc_bench{i % 200 // 4:03d}",
        "POST" if i % 3 else "GET",
        "/v1/render" if i % 3 else "/v1/templates/{id}",
        200 if i % 50 else 500,
        float(i % 997) / 10,
        IPS[i % 1000],
    )


def bench_record_latency(recorder: Any) -> dict[str, float]:
    from time import perf_counter_ns

    args = [_args(i) for i in range(1000)]
    overhead = []
    for _ in range(100_000):
        t0 = perf_counter_ns()
        t1 = perf_counter_ns()
        overhead.append(t1 - t0)
    timer_ns = statistics.median(overhead)
    record = recorder.record
    samples = []
    for i in range(LATENCY_CALLS):
        a = args[i % 1000]
        t0 = perf_counter_ns()
        record(a[0], a[1], a[2], a[3], a[4], a[5], a[6], 1024, True, False)
        t1 = perf_counter_ns()
        samples.append(t1 - t0)
    samples.sort()
    median_raw = samples[len(samples) // 2]
    p99_raw = samples[int(len(samples) * 0.99)]
    return {
        "record_median_us": round((median_raw - timer_ns) / 1000, 3),
        "record_p99_us": round((p99_raw - timer_ns) / 1000, 3),
        "record_median_raw_us": round(median_raw / 1000, 3),
        "record_p99_raw_us": round(p99_raw / 1000, 3),
        "record_max_us": round(samples[-1] / 1000, 1),
        "timer_overhead_ns": timer_ns,
    }


def bench_throughput(recorder: Any) -> dict[str, float]:
    args = [_args(i) for i in range(1000)]
    before = recorder.stats()
    record = recorder.record
    started = time.perf_counter()
    for i in range(THROUGHPUT_EVENTS):
        a = args[i % 1000]
        record(a[0], a[1], a[2], a[3], a[4], a[5], a[6], 1024, True, False)
    recorded_s = time.perf_counter() - started
    if not recorder.flush(120):
        raise RuntimeError(f"flush timed out: {recorder.stats()}")
    elapsed = time.perf_counter() - started
    after = recorder.stats()
    sent = after.sent - before.sent
    return {
        "events_per_s": round(sent / elapsed),
        "throughput_events": THROUGHPUT_EVENTS,
        "throughput_sent": sent,
        "throughput_dropped": after.dropped - before.dropped,
        "throughput_elapsed_s": round(elapsed, 3),
        "throughput_record_phase_s": round(recorded_s, 3),
        "batches": after.batches_sent - before.batches_sent,
        "avg_events_per_batch": round(sent / max(1, after.batches_sent - before.batches_sent)),
    }


def bench_baseline(topic: str, compression: str | None) -> dict[str, float]:
    from streams.client.kafka_client import build_producer, close_producer

    producer = build_producer(BOOTSTRAP, "bench-baseline", compression, {})
    try:
        producer.partitions_for(topic)
        started = time.perf_counter()
        for i in range(BASELINE_EVENTS):
            k, acc, method, route, status, latency, ip = _args(i)
            value = orjson.dumps(
                {
                    "type": "request.completed",
                    "schema_version": 1,
                    "event_id": str(uuid7()),
                    "occurred_at_ms": now_ms(),
                    "key_id": k,
                    "account_id": acc,
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": latency,
                    "client_ip": ip,
                    "bytes_out": 1024,
                    "is_render": True,
                    "watermarked": False,
                }
            )
            producer.send(topic, value=value, key=k.encode())
        producer.flush(120)
        elapsed = time.perf_counter() - started
    finally:
        close_producer(producer, 10)
    return {
        "baseline_events_per_s": round(BASELINE_EVENTS / elapsed),
        "baseline_events": BASELINE_EVENTS,
        "baseline_elapsed_s": round(elapsed, 3),
    }


def main() -> None:
    from infra.kafka.admin import ensure_topics
    from infra.kafka.broker import broker_running
    from infra.settings import KafkaSettings
    from schemas.topics import TopicNames
    from streams.client import RecorderConfig, UsageRecorder

    logging.basicConfig(level=logging.WARNING)
    compression = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "none" else None
    if len(sys.argv) <= 1:
        compression = "lz4"
    settings = KafkaSettings(bootstrap_servers=BOOTSTRAP, controller_port=CONTROLLER_PORT)
    with tempfile.TemporaryDirectory(prefix="keypulse-bench-") as tmp:
        began = time.perf_counter()
        with broker_running(settings, Path(tmp)):
            ensure_topics(BOOTSTRAP, PREFIX)
            names = TopicNames.with_prefix(PREFIX)
            config = RecorderConfig(
                bootstrap_servers=BOOTSTRAP,
                topic=names.requests,
                compression=compression,
                max_buffered_events=2_000_000,
                max_in_flight_events=400_000,
            )
            recorder = UsageRecorder(config)
            try:
                if not recorder.flush(30):
                    raise RuntimeError("recorder did not connect")
                result: dict[str, Any] = {}
                result.update(bench_record_latency(recorder))
                recorder.flush(60)
                result.update(bench_throughput(recorder))
            finally:
                final = recorder.close(30)
            result.update(bench_baseline(names.requests, compression))
    result.update(
        {
            "ratio_vs_baseline": round(result["events_per_s"] / result["baseline_events_per_s"], 2),
            "n": THROUGHPUT_EVENTS,
            "latency_calls": LATENCY_CALLS,
            "elapsed_s": round(time.perf_counter() - began, 1),
            "compression": compression or "none",
            "max_batch_events": config.max_batch_events,
            "max_batch_bytes": config.max_batch_bytes,
            "linger_ms": config.linger_ms,
            "final_sent": final.sent,
            "final_dropped": final.dropped,
            "python": platform.python_version(),
            "kafka_python": kafka.__version__,
            "orjson": orjson.__version__,
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
