"""Producers of the pipeline benchmark (kafka-python), run in their own processes."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.pipeline_data import EventFactory, backlog_windows, probe_key, probe_record

MAX_REQUEST_BYTES = 16 * 1024 * 1024 - 1024


def _log(msg: str) -> None:
    print(f"[produce] {msg}", file=sys.stderr, flush=True)


def _producer(bootstrap: str, compression: str | None, linger_ms: int = 5) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        compression_type=compression,
        max_request_size=MAX_REQUEST_BYTES,
        batch_size=1024 * 1024,
        client_id="keypulse-bench",
    )


def produce_batches(
    bootstrap: str,
    topic: str,
    events: int,
    record_events: int,
    seed: int,
    compression: str | None = None,
) -> dict[str, Any]:
    """`events` request events as batch records of `record_events`, all acknowledged.

    The records are generated before the first send, so `first_send`..`last_ack` times
    the producing alone.
    """
    factory = EventFactory(seed)
    began = time.monotonic()
    payloads = [
        factory.batch_record(n, now_ms=end, spread_ms=span)
        for n, end, span in backlog_windows(events, record_events)
    ]
    gen_s = time.monotonic() - began
    total_bytes = sum(len(p) for p in payloads)
    _log(f"{len(payloads)} records, {total_bytes / 1e6:.0f} MB generated in {gen_s:.1f} s")
    producer = _producer(bootstrap, compression)
    try:
        first_send = time.time()
        futures = [producer.send(topic, p) for p in payloads]
        producer.flush()
        for f in futures:
            f.get(timeout=60)
        last_ack = time.time()
    finally:
        producer.close()
    _log(f"{events} events acknowledged in {last_ack - first_send:.1f} s")
    return {
        "events": events,
        "records": len(payloads),
        "bytes": total_bytes,
        "generate_s": round(gen_s, 3),
        "first_send": first_send,
        "last_ack": last_ack,
    }


def produce_singles(
    bootstrap: str, topic: str, events: int, seed: int, chunk: int = 20_000
) -> dict[str, Any]:
    """`events` flat JSON events, one per Kafka message (the faust-sink input)."""
    factory = EventFactory(seed)
    producer = _producer(bootstrap, None, linger_ms=20)
    began = time.monotonic()
    try:
        for n, end, span in backlog_windows(events, chunk):
            for value in factory.single_events(n, now_ms=end, spread_ms=span):
                producer.send(topic, value)
        producer.flush()
    finally:
        producer.close()
    elapsed = time.monotonic() - began
    _log(f"{events} single-event messages in {elapsed:.1f} s")
    return {"events": events, "elapsed_s": round(elapsed, 3)}


def produce_steady(
    bootstrap: str,
    topic: str,
    rate: int,
    duration_s: float,
    tick_s: float,
    probe_run: int,
    seed: int,
    compression: str | None = None,
) -> dict[str, Any]:
    """`rate` events/s as one batch record per tick, plus one probe record per tick.

    Probe i has key_id `probe_key(probe_run, i)`; its produce time (wall clock, just
    before `send`) is returned so the consumer side can compute latencies.
    """
    factory = EventFactory(seed)
    producer = _producer(bootstrap, compression, linger_ms=0)
    per_tick = round(rate * tick_s)
    probes: list[tuple[str, float]] = []
    sent = 0
    lag_ticks = 0
    try:
        start = time.monotonic()
        next_tick = start
        seq = 0
        while next_tick < start + duration_s:
            now = time.time()
            producer.send(topic, factory.batch_record(per_tick, now_ms=int(now * 1000)))
            key = probe_key(probe_run, seq)
            probe_at = time.time()
            producer.send(topic, probe_record(key, int(probe_at * 1000)))
            probes.append((key, probe_at))
            sent += per_tick + 1
            seq += 1
            next_tick += tick_s
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                lag_ticks += 1
        producer.flush()
        elapsed = time.monotonic() - start
    finally:
        producer.close()
    _log(f"steady: {sent} events in {elapsed:.1f} s ({sent / elapsed:.0f}/s), {len(probes)} probes")
    return {
        "events": sent,
        "elapsed_s": round(elapsed, 3),
        "achieved_rate": round(sent / elapsed),
        "late_ticks": lag_ticks,
        "probes": probes,
    }
