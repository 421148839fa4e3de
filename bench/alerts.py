"""Alerting benchmark: `python -m bench.alerts`; the last stdout line is one JSON object.

Starts its own Kafka broker (ports 39592/39593, in a temporary directory, stopped at the
end even on error) and an in-process worker with default alerting settings (loopback
webhooks allowed, for the local receiver). Loads 1,000 rules over 10,000 keys (900
key-scoped over four kind/window mixes, 100 account-wide), backfills an hour of traffic,
keeps background traffic running, then injects 50 breaches (bursts past a
`request_count > 300 / 1m` rule) one by one.

- `alert_latency_p50_ms` / `alert_latency_p99_ms`: from the produce time of the event
  that crosses the threshold (the `record()` call) to receipt of the firing webhook at a
  local HTTP server.
- `eval_cycle_ms_median` / `eval_cycle_ms_p95`: the evaluator's time per cycle (queries,
  transitions, publishing, persisting) while the breaches were injected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bench.alerts_setup import BREACH_THRESHOLD, Background, all_keys, backfill, build_rules
from infra import alert_admin
from infra.kafka.admin import ensure_topics
from infra.kafka.broker import broker_running
from infra.settings import KafkaSettings, Settings, load_settings
from infra.wiring import running_worker
from schemas.alerts import AlertRuleCreated
from schemas.codec import encode
from schemas.key_format import generate_secret, hash_secret, hint
from schemas.keys import AccountCreated, KeyCreated, KeyEventModel, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from streams.client import RecorderConfig, UsageRecorder

BOOTSTRAP = "127.0.0.1:39592"
CONTROLLER_PORT = 39593


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class Receiver:
    """A local webhook endpoint noting when each key's firing notification arrived."""

    def __init__(self) -> None:
        self.firing: dict[str, float] = {}
        self.other: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        received = time.time()
        body = orjson.loads(await request.read())
        key = body["data"]["key"]["id"]
        if body["type"] == "alert.firing" and key not in self.firing:
            self.firing[key] = received
        else:
            self.other.append(f"{body['type']} {key}")
        return web.Response(text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def key_chains(keys: list[tuple[str, str]]) -> list[KeyEventModel]:
    """Each account's chain, built directly (fast at bench volume): `account.created`
    (enterprise, so no limit applies), then one live key per (account, key), each with the
    account's next `seq` and `prev`. The secrets are generated and dropped at once: only
    their hashes and hints are published, and the bench never authenticates."""
    heads: dict[str, KeyEventModel] = {}
    events: list[KeyEventModel] = []
    for account, key in keys:
        head = heads.get(account)
        if head is None:
            head = AccountCreated(account_id=account, seq=1, prev=None, plan=Plan.ENTERPRISE)
            events.append(head)
        secret = generate_secret("live")
        created = KeyCreated(
            key_id=key,
            account_id=account,
            seq=head.seq + 1,
            prev=head.event_id,
            name=f"bench {key}",
            key_type=KeyType.LIVE,
            secret_hash=hash_secret(secret),
            hint=hint(secret),
        )
        events.append(created)
        heads[account] = created
    return events


def seed(settings: Settings, webhook_url: str, breaches: int) -> Any:
    """Publish the rules and the keys; return the workload."""
    workload = build_rules(webhook_url, breaches)
    names = TopicNames.with_prefix("")
    rules: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (r.rule_id.encode(), encode(AlertRuleCreated(rule=r)), []) for r in workload.rules
    ]
    alert_admin.publish(settings, names.alert_rules, rules)
    keys: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (event.account_id.encode(), encode(event), []) for event in key_chains(all_keys())
    ]
    alert_admin.publish(settings, names.key_events, keys)
    return workload


async def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def measure(settings: Settings, opts: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver()
    url = await receiver.start()
    recorder = UsageRecorder(
        RecorderConfig(bootstrap_servers=BOOTSTRAP, topic="keypulse.requests", compression=None)
    )
    background = Background(recorder, opts.rate)
    thread = threading.Thread(target=background.run, name="bench-traffic", daemon=True)
    try:
        workload = await asyncio.to_thread(seed, settings, url, opts.breaches)
        await asyncio.to_thread(backfill, recorder, opts.backfill, 3600.0)
        await asyncio.to_thread(recorder.flush, 120)
        async with running_worker(settings) as worker:
            assert worker.alerting is not None and worker.alerting.evaluator is not None
            evaluator = worker.alerting.evaluator
            ingest = worker.app.ingest
            assert ingest is not None
            await wait_for(lambda: len(evaluator.rules) == 1000, 120, "1,000 rules")
            await wait_for(lambda: ingest.stats.events >= opts.backfill, 300, "the backfill")
            thread.start()
            await asyncio.sleep(opts.warmup)
            first_cycle = len(evaluator.stats.cycle_ms)
            cycles_before = evaluator.stats.cycles
            produced: dict[str, float] = {}
            for account, key in workload.breach_keys:
                for i in range(BREACH_THRESHOLD + 1):
                    recorder.record(key, account, "GET", "/v1/render", 200, 20.0, "198.51.100.9")
                    if i == BREACH_THRESHOLD:
                        produced[key] = time.time()
                await asyncio.sleep(opts.spacing)
            await wait_for(
                lambda: all(k in receiver.firing for k in produced), opts.timeout, "notifications"
            )
            cycles = list(evaluator.stats.cycle_ms)[first_cycle:]
            queries = evaluator.stats.last_queries
            n_cycles = evaluator.stats.cycles - cycles_before
            instances = len(evaluator.instances())
    finally:
        background.stop_flag.set()
        if thread.is_alive():
            thread.join(5)
        recorder.close(10)
        await receiver.stop()
    latencies = [(receiver.firing[k] - t) * 1000 for k, t in produced.items()]
    unexpected = [o for o in receiver.other if o.startswith("alert.firing")]
    return {
        "alert_latency_p50_ms": round(percentile(latencies, 0.5), 1),
        "alert_latency_p99_ms": round(percentile(latencies, 0.99), 1),
        "alert_latency_max_ms": round(max(latencies), 1),
        "eval_cycle_ms_median": round(statistics.median(cycles), 1),
        "eval_cycle_ms_p95": round(percentile(cycles, 0.95), 1),
        "eval_cycles": n_cycles,
        "queries_per_cycle": queries,
        "rules": len(workload.rules),
        "keys": len(all_keys()),
        "breaches": len(produced),
        "notified": sum(k in receiver.firing for k in produced),
        "unexpected_firing": len(unexpected),
        "instances": instances,
        "backfill_events": opts.backfill,
        "background_events_per_s": opts.rate,
        "eval_interval_s": settings.alerting.eval_interval_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--breaches", type=int, default=50)
    parser.add_argument("--backfill", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="background events/s")
    parser.add_argument("--warmup", type=float, default=12.0)
    parser.add_argument("--spacing", type=float, default=0.4, help="seconds between breaches")
    parser.add_argument("--timeout", type=float, default=90.0)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="keypulse-bench-alerts-") as tmp:
        root = Path(tmp)
        kafka = KafkaSettings(bootstrap_servers=BOOTSTRAP, controller_port=CONTROLLER_PORT)
        with broker_running(kafka, root / "kafka"):
            ensure_topics(BOOTSTRAP)
            settings = load_settings(
                data_dir=root / "data",
                kafka={"bootstrap_servers": BOOTSTRAP, "controller_port": CONTROLLER_PORT},
                alerting={"allow_loopback_webhooks": True},
            )
            result = asyncio.run(measure(settings, opts))
    result["targets_met"] = (
        result["alert_latency_p99_ms"] <= 10_000 and result["eval_cycle_ms_median"] <= 1000
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
