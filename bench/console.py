"""Console benchmark: `python -m bench.console` prints one JSON object as its last line.

The keys page (`GET /console/keys`) of an account with `--keys` keys (2,000) and 30 days
of traffic, served the way the README runs the product (`keypulse worker`: embedded
mode, chDB, the HTTP API and the console served by the worker, in its own process), with
the broker at `--bootstrap` (started for the run, and stopped, unless one answers there):

1. the account (enterprise), its admin key and its other keys are made through the key
   service (`CreateKey` commands submitted in batches, as concurrent API calls would
   be): a fifth of them test keys, some with an allow-list, a few expiring within days,
   a twentieth revoked; the keys agent of the worker projects them into chDB;
2. `--events` requests over 30 days are inserted by ClickHouse itself
   (`bench.console_data`, in its own process before the worker starts: chDB allows one
   process per data directory), so the materialized views run as on ingest;
3. the worker starts; the bench waits for its key registry and projection and checks the
   JSON listing (`GET /api-keys`) against the truth (each key's `count()` of
   `requests_raw`);
4. it signs in to the console over HTTP with the admin key (`bench.console_http`) and
   times `--rounds` rounds of `--runs` page loads (after `--warmup` loads), each round
   followed by a quarter as many `GET /api-keys` with the same key (the baseline: the
   same keys as JSON);
5. with `--profile FILE`, the worker stopped, the same app is profiled in this process
   (`bench.console_profile`): pstats in FILE, the top functions in the JSON (`profile`).
The run's topics are deleted and its data directory removed at the end (`--keep` keeps
the data).

Reported (milliseconds): `keys_page_p50_ms` / `keys_page_p95_ms`, the server time from
the page's `Server-Timing: app;dur=` header (request in to response headers,
`infra.console.timing`); `keys_page_client_p50_ms` / `..._client_p95_ms`, the client's
wall time (request sent to body read, over a kept-alive connection);
`baseline_api_keys_p50_ms` / `..._p95_ms`, the JSON listing's client time (Server-Timing
is on `/console` paths only, so compare client to client). Every p95 is the median of
the rounds' p95 (`*_rounds`; the machine is shared and noisy: a stall lands in one
round); `*_pooled` is the p95 of all samples. `targets_met`: the page's server and
client p95 within `target_ms`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient
from rich.console import Console

from bench.api import _rounds_stats
from bench.console_data import TrafficPlan
from bench.console_http import server_ms, sign_in
from bench.console_profile import profile_page
from bench.keys import _free_port, _wait_ready
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import broker_running
from infra.settings import KafkaSettings, load_settings
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.keyservice.commands import Command, CreateAccount, CreateKey, RevokeKey
from streams.keyservice.service import KeyService, Outcome, start_key_service

ACCOUNT = "acc_consolebench"
TARGET_MS = 200.0
err = Console(stderr=True)

_SERVICES = ("checkout", "search", "billing", "mobile", "partner", "ingest", "reports", "web")
_ENVS = ("prod", "staging", "eu", "us", "ci")


@dataclass(frozen=True)
class MadeKeys:
    admin_key_id: str
    admin_secret: str
    key_ids: list[str]
    """Every key of the account in creation order, the admin key first."""
    test_keys: list[bool]
    seconds: float


def _create_commands(n: int, rng: random.Random) -> list[CreateKey]:
    commands = []
    for i in range(n):
        test = i % 5 == 4
        name = f"{rng.choice(_SERVICES)} {rng.choice(_ENVS)} {i + 1}"
        commands.append(
            CreateKey(
                ACCOUNT,
                name,
                KeyType.TEST if test else KeyType.LIVE,
                allowed_cidrs=(f"198.51.100.{i % 250}/32",) if i % 10 == 3 else (),
                expires_in=timedelta(days=3 + i % 20) if i % 50 == 7 else None,
            )
        )
    return commands


def _run_all(service: KeyService, commands: list[Command], batch: int = 200) -> list[Outcome]:
    """Submit `commands` in batches (one decider round each, as concurrent API calls)."""
    outcomes: list[Outcome] = []
    for at in range(0, len(commands), batch):
        futures: list[Future[Outcome]] = [
            service.submit(c, actor="bench.console") for c in commands[at : at + batch]
        ]
        outcomes += [f.result(60) for f in futures]
    return outcomes


def make_keys(bootstrap: str, topics: TopicNames, keys: int) -> MadeKeys:
    """The account, its admin key and `keys - 1` other keys, through the key service."""
    began = time.perf_counter()
    rng = random.Random(15)
    with start_key_service(bootstrap, topics.key_events, client_id="bench-console") as service:
        service.execute(CreateAccount(ACCOUNT, Plan.ENTERPRISE), actor="bench.console")
        admin = service.execute(
            CreateKey(ACCOUNT, "Console bench admin", KeyType.LIVE, KeyAccess.ADMIN),
            actor="bench.console",
        ).decision
        assert admin.key_id is not None and admin.secret is not None
        commands = _create_commands(keys - 1, rng)
        made = _run_all(service, list(commands))
        ids = [o.decision.key_id for o in made]
        assert all(ids), "every create answered with a key id"
        key_ids = [admin.key_id, *(str(k) for k in ids)]
        revoked: list[Command] = [RevokeKey(ACCOUNT, k) for k in key_ids[1::20]]
        _run_all(service, revoked)
    tests = [False, *(c.key_type is KeyType.TEST for c in commands)]
    return MadeKeys(admin.key_id, admin.secret, key_ids, tests, time.perf_counter() - began)


def load_traffic(plan_path: Path) -> dict[str, Any]:
    """`bench.console_data` in its own process; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.console_data", str(plan_path)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_worker(data_dir: Path, prefix: str, port: int, bootstrap: str) -> subprocess.Popen[bytes]:
    """`keypulse worker` on `data_dir` (its log in `data_dir/worker.log`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPULSE_")} | {
        "KEYPULSE_DATA_DIR": str(data_dir),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KEYPULSE_KAFKA_TOPIC_PREFIX": prefix,
        "KEYPULSE_KAFKA_CONSUMER_GROUP": f"{prefix}worker",
        "KEYPULSE_API_HOST": "127.0.0.1",
        "KEYPULSE_API_PORT": str(port),
    }
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker"], env=env, stdout=log, stderr=log, cwd=data_dir
    )


def wait_for_listing(
    http: httpx.Client, truth: dict[str, int], keys: int, timeout_s: float
) -> list[dict[str, Any]]:
    """`GET /api-keys` once it lists `keys` keys with every key's 30-day count equal to
    `truth` (the keys agent has projected the keys); raises after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    wrong: list[str] = []
    while True:
        response = http.get("/api-keys")
        if response.status_code == 200:
            rows: list[dict[str, Any]] = response.json()["data"]
            wrong = [r["key_id"] for r in rows if r["requests_30d"] != truth.get(r["key_id"], 0)]
            if len(rows) == keys and not wrong:
                return rows
        if time.monotonic() > deadline:
            raise SystemExit(
                f"GET /api-keys did not match the truth in {timeout_s:.0f} s: "
                f"status {response.status_code}, {len(wrong)} keys differ (e.g. {wrong[:3]})"
            )
        time.sleep(1.0)


@dataclass
class Samples:
    page_server_s: list[float]
    page_client_s: list[float]
    api_client_s: list[float]
    html: str
    api_bytes: int


def _timed_get(http: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = http.get(path)
    took = time.perf_counter() - began
    if response.status_code != 200:
        raise SystemExit(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return response, took


def measure(
    console: httpx.Client, api: httpx.Client, path: str, runs: int, rounds: int, warmup: int
) -> Samples:
    """Per round: `runs` page loads, then `runs // 4` (at least 5) JSON listings (apart, so
    that a 1 MB listing's work is not charged to the page load after it)."""
    for _ in range(warmup):
        _timed_get(console, path)
        _timed_get(api, "/api-keys")
    out = Samples([], [], [], "", 0)
    for r in range(rounds):
        for _ in range(runs):
            page, took = _timed_get(console, path)
            ms = server_ms(page.headers.get("server-timing"))
            if ms is None:
                raise SystemExit(f"{path} has no Server-Timing app;dur= header")
            out.page_server_s.append(ms / 1000)
            out.page_client_s.append(took)
            out.html = page.text
        for _ in range(max(5, runs // 4)):
            listing, took = _timed_get(api, "/api-keys")
            out.api_client_s.append(took)
            out.api_bytes = len(listing.content)
        done = sorted(out.page_server_s[-runs:])
        err.print(f"round {r + 1}/{rounds}: page server median {done[runs // 2] * 1000:.1f} ms")
    return out


def summarize(samples: Samples, rounds: int, key_ids: list[str]) -> dict[str, Any]:
    page = _rounds_stats("keys_page", samples.page_server_s, rounds)
    client = _rounds_stats("keys_page_client", samples.page_client_s, rounds)
    base = _rounds_stats("baseline_api_keys", samples.api_client_s, rounds)
    shown = set(re.findall(r"key_[0-9A-Za-z]+", samples.html))
    out: dict[str, Any] = {
        name: round(value, 2) if isinstance(value, float) else value
        for name, value in {**page, **client, **base}.items()
    }
    out |= {
        "html_bytes": len(samples.html.encode()),
        "keys_in_html": sum(1 for k in key_ids if k in shown),
        "api_keys_bytes": samples.api_bytes,
        "target_ms": TARGET_MS,
        "targets_met": out["keys_page_p95_ms"] <= TARGET_MS
        and out["keys_page_client_p95_ms"] <= TARGET_MS,
    }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark in a fresh data directory, with the broker at `--bootstrap` (one is
    started there, and stopped after, unless one answers)."""
    work = Path(tempfile.mkdtemp(prefix="keypulse-bench-console-", dir=args.work_dir))
    try:
        kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
        with broker_running(kafka, work / "kafka") as lease:
            err.print(lease.describe())
            return _benchmark(work, args)
    finally:
        if args.keep:
            err.print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete the run's topics (`prefix`*) from the broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result(60)


def _benchmark(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"benchconsole{uuid.uuid4().hex[:8]}."
    ensure_topics(args.bootstrap, prefix)
    try:
        return _measured(work, args, prefix)
    finally:
        drop_topics(args.bootstrap, prefix)


def _measured(work: Path, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    topics = TopicNames.with_prefix(prefix)
    err.print(f"creating {args.keys:,} keys through the key service (topics {prefix}*)")
    made = make_keys(args.bootstrap, topics, args.keys)
    err.print(f"made {len(made.key_ids):,} keys in {made.seconds:.1f} s")
    profile: list[dict[str, Any]] = []
    plan = TrafficPlan(
        str(work), ACCOUNT, made.key_ids, made.test_keys, int(time.time()), args.events
    )
    plan.write(work / "plan.json")
    err.print(f"inserting {args.events:,} requests over 30 days into chDB in {work}")
    loaded = load_traffic(work / "plan.json")
    truth: dict[str, int] = loaded.pop("requests_by_key")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_worker(work, prefix, port, args.bootstrap)
    try:
        _wait_ready(base)
        auth = {"Authorization": f"Bearer {made.admin_secret}"}
        with (
            httpx.Client(base_url=base, headers=auth, timeout=60) as api,
            httpx.Client(base_url=base, timeout=60) as console,
        ):
            began = time.perf_counter()
            rows = wait_for_listing(api, truth, len(made.key_ids), timeout_s=180)
            err.print(
                f"listing matches the truth ({len(rows):,} keys, "
                f"{sum(truth.values()):,} requests) after {time.perf_counter() - began:.0f} s"
            )
            sign_in(console, made.admin_secret)
            err.print(f"signed in; timing {args.rounds} x {args.runs} page loads")
            samples = measure(console, api, args.path, args.runs, args.rounds, args.warmup)
    finally:
        worker.terminate()
        worker.wait(60)
    if args.profile is not None:
        err.print(f"profiling {args.path} in this process; stats to {args.profile}")
        settings = load_settings(
            _env_file=None,
            data_dir=work,
            kafka={"bootstrap_servers": args.bootstrap, "topic_prefix": prefix},
            api={"host": "127.0.0.1", "port": _free_port()},
        )
        profile = profile_page(settings, made.admin_secret, args.path, 30, args.profile)
    return {
        "benchmark": "console",
        "path": args.path,
        **summarize(samples, args.rounds, made.key_ids),
        "keys": len(rows),
        "runs": len(samples.page_server_s),
        "rounds": args.rounds,
        "events": loaded["events"],
        "listing_matches_truth": True,
        "keys_made_via": "key service (CreateKey/RevokeKey commands)",
        "keys_made_s": round(made.seconds, 1),
        "load": loaded,
        "served_by": "keypulse worker (embedded mode: chDB; the API and console in the worker)",
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)),
        **({"profile": profile} if args.profile is not None else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--keys", type=int, default=2000, help="keys of the account, admin too")
    parser.add_argument("--events", type=int, default=5_000_000, help="requests over 30 days")
    parser.add_argument("--runs", type=int, default=50, help="page loads timed per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=None, help="where the data dir goes")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--path", default="/console/keys", help="the console page timed")
    parser.add_argument(
        "--profile", type=Path, default=None, help="then profile the page; pstats to FILE"
    )
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
