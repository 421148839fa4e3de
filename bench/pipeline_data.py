"""Synthetic request events for the pipeline benchmark, built as columns (no pydantic).

`batch_record` returns the bytes of one `RequestBatch` record (the columnar envelope the
producer library sends); `single_events` flat JSON events for the faust-sink baseline;
`probe_record` a one-event record whose key_id names the probe.

The traffic model: 1,000 keys in 50 accounts, uniformly used; most keys are called from
one to a few client IPs, a few from hundreds (`IPS_PER_KEY`); ~90% 2xx; a backlog is
time-ordered, as if produced live at `BACKLOG_RATE` events/s and replayed (see
`backlog_windows`). The rollups' insert cost depends on this model: on how many minutes a
batch's events spread over and how many client IPs each key sees.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from schemas import utc

ACCOUNTS = [f"acc_bench{i:03d}" for i in range(50)]
KEYS_PER_ACCOUNT = 20
ROUTES = ["/v1/render", "/v1/images", "/v1/templates", "/v1/keys", "/v1/usage", "/v1/health"]
METHODS = ["GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"]
STATUSES = [200] * 90 + [201] * 3 + [400, 401, 403, 404, 404, 429, 500, 502, 503]
PROBE_ACCOUNT = "acc_probe"
BACKLOG_RATE = 10_000
IPS_PER_KEY = [1] * 30 + [2] * 30 + [4] * 20 + [8] * 12 + [32] * 6 + [256] * 2


def _ip_pool(rng: random.Random, n: int) -> list[str]:
    v4 = [f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(n - n // 8)]
    v6 = [f"2001:db8::{rng.randrange(1, 0xFFFF):x}" for _ in range(n // 8)]
    return v4 + v6


class EventFactory:
    """Deterministic, cheap columns: unique event ids, recent timestamps, 1,000 keys."""

    def __init__(self, seed: int, ips_per_key: bool = True) -> None:
        self.ips_per_key = ips_per_key
        self._rng = random.Random(seed)
        self._seed = seed & 0xFFFF
        self._serial = 0
        self._pairs = [
            (acc, f"key_{acc[4:]}k{k:02d}") for acc in ACCOUNTS for k in range(KEYS_PER_ACCOUNT)
        ]
        self._ips = _ip_pool(self._rng, 4000)
        # Most keys are used from a few servers, a few from many clients.
        sizes = self._rng.choices(IPS_PER_KEY, k=len(self._pairs))
        self._key_ips = [self._rng.sample(self._ips, size) for size in sizes]
        self._latencies = [round(self._rng.lognormvariate(3.5, 0.8), 2) for _ in range(4096)]
        self._bytes = [self._rng.randrange(200, 200_000) for _ in range(4096)]

    def columns(self, n: int, now_ms: int | None = None, spread_ms: int = 0) -> dict[str, Any]:
        """`n` events; occurred_at within `spread_ms` before `now_ms` (default: now)."""
        rng = self._rng
        self._serial += 1
        prefix = f"{self._serial:08x}-{self._seed:04x}-7000-8000-"
        now = utc.now_ms() if now_ms is None else now_ms
        if spread_ms:
            occurred = sorted(now - rng.randrange(spread_ms) for _ in range(n))
        else:
            occurred = [now] * n
        picks = rng.choices(range(len(self._pairs)), k=n)
        pairs = [self._pairs[i] for i in picks]
        if self.ips_per_key:
            key_ips = self._key_ips
            ips = [rng.choice(key_ips[i]) for i in picks]
        else:
            ips = rng.choices(self._ips, k=n)
        statuses = rng.choices(STATUSES, k=n)
        renders = rng.choices((True, False, False, False), k=n)
        return {
            "event_id": [f"{prefix}{i:012x}" for i in range(n)],
            "occurred_at_ms": occurred,
            "key_id": [p[1] for p in pairs],
            "account_id": [p[0] for p in pairs],
            "method": rng.choices(METHODS, k=n),
            "route": rng.choices(ROUTES, k=n),
            "status": statuses,
            "latency_ms": rng.choices(self._latencies, k=n),
            "client_ip": ips,
            "bytes_out": rng.choices(self._bytes, k=n),
            "is_render": renders,
            "watermarked": [False] * n,
        }

    def batch_record(self, n: int, now_ms: int | None = None, spread_ms: int = 0) -> bytes:
        """One `RequestBatch` record (`type: request.batch`) of `n` events."""
        body = {
            "type": "request.batch",
            "schema_version": 1,
            "event_id": f"{self._seed:08x}-0000-7000-8000-{self._serial + 1:012x}",
            "occurred_at": "2025-01-01T00:00:00Z",
            "batch_id": f"{self._seed:08x}-0001-7000-8000-{self._serial + 1:012x}",
            "columns": self.columns(n, now_ms, spread_ms),
        }
        return orjson.dumps(body)

    def single_events(self, n: int, now_ms: int | None = None, spread_ms: int = 0) -> list[bytes]:
        """`n` flat JSON events, one per Kafka message (the faust-sink baseline's input)."""
        cols = self.columns(n, now_ms, spread_ms)
        names = list(cols)
        return [orjson.dumps({c: cols[c][i] for c in names}) for i in range(n)]


def backlog_windows(
    events: int, chunk: int, rate: int = BACKLOG_RATE, end_ms: int | None = None
) -> list[tuple[int, int, int]]:
    """(count, end_ms, span_ms) per chunk of a time-ordered backlog ending at `end_ms`."""
    end = utc.now_ms() if end_ms is None else end_ms
    sizes = [chunk] * (events // chunk) + ([events % chunk] if events % chunk else [])
    spans = [max(1, n * 1000 // rate) for n in sizes]
    out: list[tuple[int, int, int]] = []
    t = end - sum(spans)
    for n, span in zip(sizes, spans, strict=True):
        t += span
        out.append((n, t, span))
    return out


def probe_key(run: int, seq: int) -> str:
    return f"key_probe{run:02d}n{seq:06d}"


def probe_record(key_id: str, now_ms: int) -> bytes:
    """A one-event batch record for `key_id` in the probe account."""
    cols: dict[str, Any] = {
        "event_id": [f"ffffffff-{now_ms % 0xFFFF:04x}-7000-8000-{now_ms:012x}"],
        "occurred_at_ms": [now_ms],
        "key_id": [key_id],
        "account_id": [PROBE_ACCOUNT],
        "method": ["GET"],
        "route": ["/v1/probe"],
        "status": [200],
        "latency_ms": [1.0],
        "client_ip": ["192.0.2.1"],
        "bytes_out": [0],
        "is_render": [False],
        "watermarked": [False],
    }
    return orjson.dumps(
        {
            "type": "request.batch",
            "schema_version": 1,
            "event_id": f"ffffffff-{now_ms % 0xFFFF:04x}-7001-8000-{now_ms:012x}",
            "occurred_at": utc.from_epoch_ms(now_ms).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "batch_id": f"ffffffff-{now_ms % 0xFFFF:04x}-7002-8000-{now_ms:012x}",
            "columns": cols,
        }
    )
