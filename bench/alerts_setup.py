"""Workload of `bench.alerts`: keys, rules, background traffic and injected breaches."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.alerts import AlertRule
from schemas.utc import now_ms

ACCOUNTS = 100
KEYS_PER_ACCOUNT = 100
BREACH_THRESHOLD = 300  # requests per 1m window on the breach-target rules
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def account_id(a: int) -> str:
    return f"acc_b{a:03d}"


def key_id(a: int, k: int) -> str:
    return f"key_b{a:03d}k{k:03d}"


def all_keys() -> list[tuple[str, str]]:
    return [(account_id(a), key_id(a, k)) for a in range(ACCOUNTS) for k in range(KEYS_PER_ACCOUNT)]


@dataclass
class Workload:
    rules: list[AlertRule]
    breach_keys: list[tuple[str, str]]  # (account, key) with a request_count > 300/1m rule


def build_rules(webhook_url: str, breaches: int) -> Workload:
    """1,000 rules: 900 key-scoped over distinct keys (4 kinds/windows), 100 account-wide."""
    keys = all_keys()
    channel = [{"type": "webhook", "url": webhook_url, "secret": SECRET}]
    rules: list[AlertRule] = []
    targets: list[tuple[str, str]] = []
    for i in range(900):
        account, key = keys[i * 11]
        base: dict[str, Any] = {
            "rule_id": f"rule_k{i:04d}",
            "account_id": account,
            "name": f"key rule {i}",
            "scope": {"type": "key", "key_id": key},
            "channels": channel,
        }
        variant = i % 4
        if variant == 0:
            base |= {"kind": "request_count", "window_s": "1m", "threshold": BREACH_THRESHOLD}
            targets.append((account, key))
        elif variant == 1:
            base |= {"kind": "latency", "percentile": "p99", "window_s": "5m", "threshold": 5000}
            base["min_requests"] = 10
        elif variant == 2:
            base |= {"kind": "error_rate", "window_s": "15m", "threshold": 50, "min_requests": 20}
        else:
            base |= {"kind": "request_count", "window_s": "1h", "threshold": 1_000_000}
        rules.append(AlertRule.model_validate(base))
    for a in range(ACCOUNTS):
        base = {
            "rule_id": f"rule_a{a:04d}",
            "account_id": account_id(a),
            "name": f"account rule {a}",
            "scope": {"type": "account"},
            "channels": channel,
        }
        if a % 2:
            base |= {"kind": "error_rate", "window_s": "5m", "threshold": 50, "min_requests": 20}
        else:
            base |= {"kind": "latency", "percentile": "p95", "window_s": "1h", "threshold": 5000}
        rules.append(AlertRule.model_validate(base))
    rng = random.Random(11)
    return Workload(rules, rng.sample(targets, breaches))


def record_one(
    recorder: Any, rng: random.Random, account: str, key: str, at_ms: int | None
) -> None:
    status = 500 if rng.random() < 0.01 else 200
    latency = min(rng.lognormvariate(3.5, 0.6), 3000.0)
    recorder.record(
        key, account, "GET", "/v1/render", status, latency, "198.51.100.7", occurred_at=at_ms
    )


def backfill(recorder: Any, events: int, span_s: float, seed: int = 1) -> None:
    """`events` requests spread over the last `span_s` seconds across all keys."""
    rng = random.Random(seed)
    keys = all_keys()
    start_ms = now_ms()
    for _ in range(events):
        account, key = keys[rng.randrange(len(keys))]
        record_one(recorder, rng, account, key, start_ms - int(rng.random() * span_s * 1000))


@dataclass
class Background:
    """A thread recording `rate` requests per second over random keys until stopped."""

    recorder: Any
    rate: float
    stop_flag: threading.Event = field(default_factory=threading.Event)
    recorded: int = 0

    def run(self) -> None:
        rng = random.Random(2)
        keys = all_keys()
        began = time.monotonic()
        while not self.stop_flag.is_set():
            due = int((time.monotonic() - began) * self.rate)
            while self.recorded < due:
                account, key = keys[rng.randrange(len(keys))]
                record_one(self.recorder, rng, account, key, None)
                self.recorded += 1
            time.sleep(0.01)
