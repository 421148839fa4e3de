"""End-to-end ingest benchmark: `python -m bench.pipeline [--quick]`.

Starts its own Kafka broker (ports 39492/39493, under a temp dir), produces from child
processes, and runs every measured consumer in a child process of its own with a fresh,
migrated chDB directory:

- `events_per_s`: the keypulse worker (`running_worker`) over N pre-produced events in
  batch records, timed from partition assignment until all N are counted, then checked
  with `SELECT count() FROM requests_raw`; plus one run while the producer runs.
- `ceiling_events_per_s`: aiokafka `getmany` + orjson + one column insert per block of
  the same size, over the same topic data (see `bench.pipeline_ceiling`);
  `ceiling_arrow_events_per_s` the same through `insert_arrow` (informational).
- `faust_sink_events_per_s`: a plain faust sink, one JSON event per message, take(1000)
  (see `bench.pipeline_faust_sink`).
- `freshness_p50/p95/p99_ms`: a steady producer at `--rate` events/s with one probe
  record per tick; each probe timed from send to visible in `usage_rollup`.

Throughput phases run `--runs` times, rotating their order; medians are reported with
every run, and the keypulse runs carry a timing breakdown (take wait, decode, write).
Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import orjson

from infra.kafka.admin import ensure_topics
from infra.kafka.broker import JARS_DIR, broker_running
from infra.settings import KafkaSettings, WorkerSettings
from schemas.topics import TopicNames

HOST = "127.0.0.1"
BROKER_PORT = 39492
CONTROLLER_PORT = 39493
TARGETS = {
    "events_per_s": 100_000,
    "vs_faust_sink": 5.0,
    "vs_ceiling": 1.0,
    "freshness_p99_ms": 2000,
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Child:
    """A `bench.pipeline_runner` step in its own process; stdout's last line is the result."""

    live: ClassVar[list[Child]] = []

    def __init__(self, step: str, args: dict[str, Any]) -> None:
        self.step = step
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline_runner", step, orjson.dumps(args).decode()],
            stdout=subprocess.PIPE,
            text=True,
        )
        Child.live.append(self)

    def result(self, timeout_s: float = 900.0) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        finally:
            self.kill()
        lines = [ln for ln in (out or "").splitlines() if ln.strip()]
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"step {self.step} failed (exit {self.proc.returncode})")
        parsed: dict[str, Any] = orjson.loads(lines[-1])
        return parsed

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self in Child.live:
            Child.live.remove(self)

    @classmethod
    def kill_all(cls) -> None:
        for child in list(cls.live):
            child.kill()


def run_step(step: str, args: dict[str, Any]) -> dict[str, Any]:
    return Child(step, args).result()


def wait_for_file(path: Path, child: Child, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not child.running():
            child.result()  # raises with the exit status
            raise RuntimeError(f"step {child.step} ended before {path.name}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"step {child.step}: no {path.name} after {timeout_s:.0f} s")
        time.sleep(0.05)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def median_int(values: list[int]) -> int:
    return round(statistics.median(values))


class Bench:
    def __init__(self, opts: argparse.Namespace, root: Path) -> None:
        self.opts = opts
        self.root = root
        self.bootstrap = f"{HOST}:{BROKER_PORT}"
        self.phase_s: dict[str, float] = {}
        self.seq = 0

    def child_args(self, prefix: str, name: str) -> dict[str, Any]:
        """Settings for a consumer child: fresh data dir and consumer group."""
        self.seq += 1
        data_dir = self.root / f"{self.seq:02d}-{name}"
        data_dir.mkdir(parents=True)
        return {
            "data_dir": str(data_dir),
            "bootstrap": self.bootstrap,
            "controller_port": CONTROLLER_PORT,
            "prefix": prefix,
            "group": f"{prefix}{name}",
        }

    def cleanup(self, args: dict[str, Any]) -> None:
        if not self.opts.keep_dir:
            shutil.rmtree(args["data_dir"], ignore_errors=True)

    def timed(self, phase: str, began: float) -> None:
        self.phase_s[phase] = round(self.phase_s.get(phase, 0.0) + time.monotonic() - began, 1)

    # -- phases -----------------------------------------------------------------------
    def produce(self, throughput_topic: str, sink_topic: str) -> dict[str, Any]:
        began = time.monotonic()
        o = self.opts
        batches = Child(
            "produce-batches",
            {
                "bootstrap": self.bootstrap,
                "topic": throughput_topic,
                "events": o.events,
                "record_events": o.record_events,
                "seed": 1,
                "compression": o.compression,
            },
        )
        singles = Child(
            "produce-singles",
            {"bootstrap": self.bootstrap, "topic": sink_topic, "events": o.sink_events, "seed": 2},
        )
        result = {"batches": batches.result(), "singles": singles.result()}
        self.timed("produce", began)
        return result

    def keypulse_run(self, prefix: str, name: str, profile: bool) -> dict[str, Any]:
        began = time.monotonic()
        args = self.child_args(prefix, name)
        args["events"] = self.opts.events
        if profile and self.opts.profile_dir:
            args["profile_file"] = str(Path(self.opts.profile_dir) / f"{name}.pstats")
        try:
            return run_step("keypulse", args)
        finally:
            self.cleanup(args)
            self.timed("keypulse", began)

    def ceiling_run(self, prefix: str, topic: str, name: str, arrow: bool) -> dict[str, Any]:
        began = time.monotonic()
        args = self.child_args(prefix, name)
        args.update(
            topic=topic,
            events=self.opts.events,
            max_events=WorkerSettings().batch_max_events,
            arrow=arrow,
        )
        try:
            return run_step("ceiling", args)
        finally:
            self.cleanup(args)
            self.timed("ceiling_arrow" if arrow else "ceiling", began)

    def faust_sink_run(self, prefix: str, topic: str, name: str) -> dict[str, Any]:
        began = time.monotonic()
        args = self.child_args(prefix, name)
        args.update(topic=topic, events=self.opts.sink_events)
        try:
            return run_step("faust-sink", args)
        finally:
            self.cleanup(args)
            self.timed("faust_sink", began)

    def concurrent_run(self, prefix: str, topic: str) -> dict[str, Any]:
        """Worker already consuming; the producer starts after; clock from its first send."""
        began = time.monotonic()
        o = self.opts
        args = self.child_args(prefix, "kp-concurrent")
        ready = Path(args["data_dir"]) / "ready"
        args.update(events=o.concurrent_events, ready_file=str(ready))
        worker = Child("keypulse", args)
        try:
            wait_for_file(ready, worker)
            producer = Child(
                "produce-batches",
                {
                    "bootstrap": self.bootstrap,
                    "topic": topic,
                    "events": o.concurrent_events,
                    "record_events": o.record_events,
                    "seed": 3,
                    "compression": o.compression,
                },
            )
            produced = producer.result()
            consumed = worker.result()
        finally:
            worker.kill()
            self.cleanup(args)
            self.timed("concurrent", began)
        span = consumed["wall_end"] - produced["first_send"]
        produce_span = produced["last_ack"] - produced["first_send"]
        return {
            "events": o.concurrent_events,
            "elapsed_s": round(span, 3),
            "events_per_s": round(o.concurrent_events / span),
            "producer_events_per_s": round(o.concurrent_events / produce_span),
            "worker": consumed,
        }

    def freshness(self, prefix: str, topic: str) -> dict[str, Any]:
        began = time.monotonic()
        o = self.opts
        args = self.child_args(prefix, "kp-freshness")
        ready = Path(args["data_dir"]) / "ready"
        stop = Path(args["data_dir"]) / "stop"
        args.update(ready_file=str(ready), stop_file=str(stop))
        worker = Child("freshness", args)
        try:
            wait_for_file(ready, worker)
            produced = run_step(
                "produce-steady",
                {
                    "bootstrap": self.bootstrap,
                    "topic": topic,
                    "rate": o.rate,
                    "duration_s": o.freshness_s,
                    "tick_s": o.tick_ms / 1000,
                    "probe_run": 1,
                    "seed": 4,
                    "compression": o.compression,
                },
            )
            probes: list[tuple[str, float]] = [(k, t) for k, t in produced.pop("probes")]
            stop.write_text(f"{len(probes)}\n")
            consumed = worker.result()
        finally:
            worker.kill()
            self.cleanup(args)
            self.timed("freshness", began)
        seen: dict[str, float] = consumed.pop("seen")
        latencies = sorted((seen[k] - t) * 1000 for k, t in probes if k in seen)
        missing = sum(1 for k, _ in probes if k not in seen)
        if not latencies:
            raise RuntimeError("no probe became visible")
        return {
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(latencies[-1], 1),
            "min_ms": round(latencies[0], 1),
            "probes": len(probes),
            "missing": missing,
            "producer": produced,
            "worker": consumed,
        }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "faust-streaming",
        "aiokafka",
        "kafka-python",
        "clickhouse-connect",
        "chdb",
        "chdb-core",
        "orjson",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    jars = sorted(JARS_DIR.glob("kafka_2.13-*.jar"))
    out["kafka"] = jars[0].stem.split("-", 1)[1] if jars else "unknown"
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts, one run (< 3 min)")
    p.add_argument("--events", type=int, help="events per throughput run (default 2,000,000)")
    p.add_argument("--record-events", type=int, default=20_000, help="events per batch record")
    p.add_argument("--runs", type=int, help="runs of each throughput phase (default 3)")
    p.add_argument("--sink-events", type=int, help="faust-sink events (default 200,000)")
    p.add_argument("--concurrent-events", type=int, help="events of the run with the producer")
    p.add_argument("--no-concurrent", action="store_true", help="skip the concurrent run")
    p.add_argument(
        "--no-arrow-ceiling", action="store_true", help="skip the insert_arrow ceiling variant"
    )
    p.add_argument("--rate", type=int, default=10_000, help="freshness load, events/s")
    p.add_argument("--tick-ms", type=int, default=100, help="one record + one probe per tick")
    p.add_argument("--freshness-s", type=float, help="freshness duration (default 40)")
    p.add_argument("--compression", choices=("lz4", "gzip", "zstd", "snappy"), default=None)
    p.add_argument("--profile-dir", help="write a cProfile of each keypulse run here")
    p.add_argument("--keep-dir", action="store_true", help="keep the temp dir (data, logs)")
    opts = p.parse_args(argv)
    quick = opts.quick
    defaults = {
        "events": 600_000 if quick else 2_000_000,
        "runs": 1 if quick else 3,
        "sink_events": 50_000 if quick else 200_000,
        "freshness_s": 15.0 if quick else 40.0,
    }
    for name, value in defaults.items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    if opts.concurrent_events is None:
        opts.concurrent_events = opts.events // 2 if quick else opts.events
    if opts.profile_dir:
        Path(opts.profile_dir).mkdir(parents=True, exist_ok=True)
    return opts


def summarize(
    opts: argparse.Namespace,
    bench: Bench,
    runs: dict[str, list[dict[str, Any]]],
    concurrent: dict[str, Any] | None,
    fresh: dict[str, Any],
    produced: dict[str, Any],
    total_s: float,
) -> dict[str, Any]:
    rates = {k: [r["events_per_s"] for r in v] for k, v in runs.items()}
    kp = median_int(rates["keypulse"])
    ceiling = median_int(rates["ceiling"])
    sink = median_int(rates["faust_sink"])
    arrow = median_int(rates["ceiling_arrow"]) if rates["ceiling_arrow"] else None
    result: dict[str, Any] = {
        "events_per_s": kp,
        "freshness_p50_ms": fresh["p50_ms"],
        "freshness_p95_ms": fresh["p95_ms"],
        "freshness_p99_ms": fresh["p99_ms"],
        "faust_sink_events_per_s": sink,
        "ceiling_events_per_s": ceiling,
        "vs_faust_sink": round(kp / sink, 2),
        "vs_ceiling": round(kp / ceiling, 3),
        "events_per_s_concurrent_producer": concurrent["events_per_s"] if concurrent else None,
        "ceiling_arrow_events_per_s": arrow,
        "vs_ceiling_arrow": round(kp / arrow, 3) if arrow else None,
        "runs": {
            "events_per_s": rates["keypulse"],
            "ceiling_events_per_s": rates["ceiling"],
            "faust_sink_events_per_s": rates["faust_sink"],
            "ceiling_arrow_events_per_s": rates["ceiling_arrow"],
            "vs_ceiling_paired": [
                round(a / b, 3) for a, b in zip(rates["keypulse"], rates["ceiling"], strict=True)
            ],
        },
    }
    result["targets"] = {
        "events_per_s>=100000": kp >= TARGETS["events_per_s"],
        "vs_faust_sink>=5": result["vs_faust_sink"] >= TARGETS["vs_faust_sink"],
        "vs_ceiling>=1.0": result["vs_ceiling"] >= TARGETS["vs_ceiling"],
        "freshness_p99_ms<=2000": fresh["p99_ms"] <= TARGETS["freshness_p99_ms"],
    }
    result["targets_met"] = all(result["targets"].values())
    result["n"] = {
        "keypulse": opts.events,
        "ceiling": opts.events,
        "faust_sink": opts.sink_events,
        "concurrent": opts.concurrent_events if concurrent else 0,
        "freshness_events": fresh["producer"]["events"],
        "freshness_probes": fresh["probes"],
        "freshness_missing": fresh["missing"],
        "runs": opts.runs,
        "record_events": opts.record_events,
        "block_max_events": WorkerSettings().batch_max_events,
    }
    result["elapsed_s"] = {
        "total": round(total_s, 1),
        **bench.phase_s,
        "keypulse_runs": [r["elapsed_s"] for r in runs["keypulse"]],
        "ceiling_runs": [r["elapsed_s"] for r in runs["ceiling"]],
        "ceiling_arrow_runs": [r["elapsed_s"] for r in runs["ceiling_arrow"]],
        "faust_sink_runs": [r["elapsed_s"] for r in runs["faust_sink"]],
    }
    result["details"] = {
        "keypulse": [_brief(r) for r in runs["keypulse"]],
        "ceiling": [_brief(r) for r in runs["ceiling"]],
        "ceiling_arrow": [_brief(r) for r in runs["ceiling_arrow"]],
        "concurrent": {k: v for k, v in concurrent.items() if k != "worker"}
        if concurrent
        else None,
        "freshness": {
            "min_ms": fresh["min_ms"],
            "max_ms": fresh["max_ms"],
            "achieved_rate": fresh["producer"]["achieved_rate"],
            "late_ticks": fresh["producer"]["late_ticks"],
            "events_per_block": fresh["worker"]["events_per_block"],
            "insert_ms_median": fresh["worker"]["insert_ms_median"],
        },
        "produce": {
            "records": produced["batches"]["records"],
            "mb": round(produced["batches"]["bytes"] / 1e6),
            "events_per_s": round(
                opts.events / (produced["batches"]["last_ack"] - produced["batches"]["first_send"])
            ),
        },
    }
    result["config"] = {
        "quick": opts.quick,
        "rate": opts.rate,
        "tick_ms": opts.tick_ms,
        "freshness_s": opts.freshness_s,
        "compression": opts.compression,
        "cpus": _cpus(),
    }
    result["versions"] = versions()
    result["versions"]["clickhouse"] = runs["ceiling"][0].get("clickhouse_version", "unknown")
    return result


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("events_per_s", "elapsed_s", "startup_s", "blocks", "events_per_block")
    extra = ("insert_s_total", "insert_share", "insert_ms_median", "breakdown")
    return {k: run[k] for k in (*keys, *extra) if k in run}


def run(opts: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="keypulse-bench-"))
    log(f"work dir {root}")
    kafka = KafkaSettings(
        bootstrap_servers=f"{HOST}:{BROKER_PORT}", controller_port=CONTROLLER_PORT
    )
    bench = Bench(opts, root)
    broker = contextlib.ExitStack()
    try:
        lease = broker.enter_context(broker_running(kafka, root / "kafka"))
        log(f"broker ready in {lease.seconds:.1f} s")
        prefixes = {"throughput": "bt.", "sink": "bs.", "concurrent": "bc.", "fresh": "bf."}
        for prefix in prefixes.values():
            ensure_topics(bench.bootstrap, prefix)
        topic = {k: TopicNames.with_prefix(p).requests for k, p in prefixes.items()}
        log(f"producing {opts.events:,} batched events and {opts.sink_events:,} single events")
        produced = bench.produce(topic["throughput"], topic["sink"])

        runs: dict[str, list[dict[str, Any]]] = {
            "keypulse": [],
            "ceiling": [],
            "faust_sink": [],
            "ceiling_arrow": [],
        }
        phases = ["keypulse", "ceiling", "faust_sink"]
        if not opts.no_arrow_ceiling:
            phases.append("ceiling_arrow")
        bt = prefixes["throughput"]
        for i in range(opts.runs):
            order = phases[i % len(phases) :] + phases[: i % len(phases)]
            for phase in order:
                log(f"round {i + 1}/{opts.runs}: {phase}")
                if phase == "keypulse":
                    res = bench.keypulse_run(bt, f"kp{i}", profile=True)
                elif phase.startswith("ceiling"):
                    arrow = phase == "ceiling_arrow"
                    name = f"{'ca' if arrow else 'ce'}{i}"
                    res = bench.ceiling_run(bt, topic["throughput"], name, arrow)
                else:
                    res = bench.faust_sink_run(prefixes["sink"], topic["sink"], f"fs{i}")
                runs[phase].append(res)
                log(f"round {i + 1}: {phase} {res['events_per_s']:,} events/s")

        concurrent = None
        if not opts.no_concurrent and opts.concurrent_events > 0:
            log(f"keypulse while producing {opts.concurrent_events:,} events")
            concurrent = bench.concurrent_run(prefixes["concurrent"], topic["concurrent"])
            log(f"concurrent: {concurrent['events_per_s']:,} events/s")

        log(f"freshness: {opts.rate:,} events/s for {opts.freshness_s:.0f} s")
        fresh = bench.freshness(prefixes["fresh"], topic["fresh"])
        log(f"freshness p50 {fresh['p50_ms']} ms, p95 {fresh['p95_ms']}, p99 {fresh['p99_ms']}")
    finally:
        Child.kill_all()
        broker.close()
        if not opts.keep_dir:
            shutil.rmtree(root, ignore_errors=True)
    return summarize(opts, bench, runs, concurrent, fresh, produced, time.monotonic() - began)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    result = run(opts)
    for name, ok in result["targets"].items():
        log(f"target {name}: {'met' if ok else 'MISSED'}")
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
