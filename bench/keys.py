"""Key service benchmark: `python -m bench.keys` prints one JSON object as its last line.

Starts the local API the way the README does (`keypulse worker`, which serves the HTTP
API, in its own process, on a fresh data directory and topic prefix), creates an
Enterprise account and an admin key through the key service, then sends `POST /api-keys`
from `--clients` concurrent clients, each on its own HTTP connection: `wrk` (16
connections on 2 threads, a Lua script that makes each body unique and counts answers
other than 201) when it is installed (`apt-get install wrk`), else Python threads with
httpx (which spend the CPU the server needs on a 2-core machine; `load_generator` says
which ran):

- `create_p50_ms`, `create_p99_ms`: the latency of one create (request to 201);
- `creates_per_s`: creates answered per second of wall time during the load;
- `floor_p50_ms`, `floor_p99_ms`: the floor, one produce-and-wait of the same kind of event
  (`key.created`) with the same producer settings (`KeyEventPublisher`, acks=all,
  idempotent), sequentially, to a scratch topic; measured before and after the load and
  pooled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from infra.kafka.admin import ensure_topics
from schemas.key_format import generate_secret, hash_secret, hint, new_key_id
from schemas.keys import KeyAccess, KeyCreated, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from schemas.uuid7 import uuid7
from streams.client.key_events import KeyEventPublisher, PublisherConfig
from streams.keyservice.commands import CreateAccount, CreateKey
from streams.keyservice.service import start_key_service

ACCOUNT = "acc_benchkeys"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _floor(bootstrap: str, topic: str, n: int) -> list[float]:
    """Sequential produce-and-wait of `key.created` events (seconds each)."""
    samples: list[float] = []
    with KeyEventPublisher(PublisherConfig(bootstrap, topic, client_id="bench-floor")) as pub:
        for i in range(n + 5):
            secret = generate_secret("live")
            event = KeyCreated(
                account_id=ACCOUNT,
                seq=i + 2,
                prev=uuid7(),
                key_id=new_key_id(),
                name="floor",
                key_type=KeyType.LIVE,
                secret_hash=hash_secret(secret),
                hint=hint(secret),
            )
            start = time.perf_counter()
            pub.publish(event, wait=True)
            if i >= 5:  # the first sends open the connection
                samples.append(time.perf_counter() - start)
    return samples


def _start_worker(
    data_dir: Path, prefix: str, port: int, bootstrap: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPULSE_")} | {
        "KEYPULSE_DATA_DIR": str(data_dir),
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KEYPULSE_KAFKA_TOPIC_PREFIX": prefix,
        "KEYPULSE_API_HOST": "127.0.0.1",
        "KEYPULSE_API_PORT": str(port),
    }
    log = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker"], env=env, stdout=log, stderr=log, cwd=data_dir
    )


def _wait_ready(base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the worker's API at {base} was not ready within {timeout_s} s")


def _load(base: str, secret: str, clients: int, per_client: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        nonlocal failures
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            http.get("/account")  # open the connection before the clock starts
            barrier.wait()
            for i in range(per_client):
                body = {"name": f"bench client {c} key {i}", "type": "test" if i % 2 else "live"}
                start = time.perf_counter()
                response = http.post("/api-keys", json=body)
                took = time.perf_counter() - start
                with lock:
                    if response.status_code == 201:
                        latencies.append(took)
                    else:
                        failures += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, failures


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_SECRET")
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = 0
  other = 0
end
function request()
  n = n + 1
  local kind = (n % 2 == 0) and "live" or "test"
  local body = string.format('{"name":"bench %d-%d","type":"%s"}', id, n, kind)
  return wrk.format(nil, "/api-keys", nil, body)
end
function response(status, headers, body)
  if status ~= 201 then other = other + 1 end
end
function done(summary, latency, requests)
  local failures = 0
  for _, t in ipairs(threads) do failures = failures + t:get("other") end
  io.write(string.format(
    'WRK {"p50_us": %d, "p99_us": %d, "requests": %d, "duration_us": %d, "failures": %d}\\n',
    latency:percentile(50), latency:percentile(99), summary.requests, summary.duration,
    failures))
end
"""


def _load_wrk(base: str, secret: str, clients: int, seconds: int, work: Path) -> dict[str, float]:
    script = work / "create.lua"
    script.write_text(WRK_SCRIPT)
    threads = min(2, clients)
    done = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{seconds}s",
            "-s",
            str(script),
            base,
        ],
        env={**os.environ, "BENCH_SECRET": secret},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    result = json.loads(line[4:])
    return {
        "creates": result["requests"] - result["failures"],
        "failures": result["failures"],
        "create_p50_ms": round(result["p50_us"] / 1000, 2),
        "create_p99_ms": round(result["p99_us"] / 1000, 2),
        "creates_per_s": round(result["requests"] / (result["duration_us"] / 1e6), 1),
    }


def _load_httpx(base: str, secret: str, clients: int, per_client: int) -> dict[str, float]:
    latencies, wall_s, failures = _load(base, secret, clients, per_client)
    ms = [s * 1000 for s in latencies]
    return {
        "creates": len(latencies),
        "failures": failures,
        "create_p50_ms": round(statistics.median(ms), 2),
        "create_p99_ms": round(_percentile(ms, 0.99), 2),
        "creates_per_s": round(len(latencies) / wall_s, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = args.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, prefix)
    names = TopicNames.with_prefix(prefix)
    floor_prefix = f"benchfloor{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, floor_prefix)
    floor_topic = TopicNames.with_prefix(floor_prefix).key_events
    with start_key_service(bootstrap, names.key_events) as service:
        service.execute(CreateAccount(ACCOUNT, Plan.ENTERPRISE))
        admin = service.execute(
            CreateKey(ACCOUNT, "Bench admin", KeyType.LIVE, access=KeyAccess.ADMIN)
        )
    secret = admin.decision.secret
    assert secret is not None
    floor = _floor(bootstrap, floor_topic, args.floor_samples)
    with tempfile.TemporaryDirectory(prefix="keypulse-bench-keys-") as tmp:
        port = _free_port()
        worker = _start_worker(Path(tmp), prefix, port, bootstrap)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            _load(base, secret, args.clients, 5)  # warm-up
            use_wrk = shutil.which("wrk") is not None and not args.httpx
            measured = (
                _load_wrk(base, secret, args.clients, args.seconds, Path(tmp))
                if use_wrk
                else _load_httpx(base, secret, args.clients, args.per_client)
            )
        finally:
            worker.terminate()
            worker.wait(60)
    floor += _floor(bootstrap, floor_topic, args.floor_samples)
    floor_ms = [s * 1000 for s in floor]
    return {
        "benchmark": "keys",
        "load_generator": "wrk" if use_wrk else "httpx",
        "clients": args.clients,
        **measured,
        "floor_p50_ms": round(statistics.median(floor_ms), 2),
        "floor_p99_ms": round(_percentile(floor_ms, 0.99), 2),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=100, help="httpx only")
    parser.add_argument("--seconds", type=int, default=10, help="wrk only: load duration")
    parser.add_argument("--httpx", action="store_true", help="use httpx even with wrk")
    parser.add_argument("--floor-samples", type=int, default=200)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
