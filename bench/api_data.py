"""Synthetic data for `bench.api`: 10,000 keys and 50 M request events over 30 days.

The events go through the real insert path (`ClickHouseIngestStore.write(InsertBlock)`),
in time order (as a live pipeline would deliver them), in blocks of 50,000 rows with
synthetic offsets. Traffic is skewed: key popularity follows a Zipf law (a few hot keys,
a long cold tail), days grow towards the present and hours follow a daily curve.
Keys are registered the way the worker registers them: each account's chain of key events
(`account.created`, then one `key.created` per key, with `seq` and `prev`) is built
directly, judged by the keys agent's pure fold (`fold_key_events`) and saved with
`ClickHouseKeyStore.save`. One account holds 1,000 keys (the listing case, on the
enterprise plan), the others hold 1 to 50 keys each (business).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client

from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.key_format import generate_secret, hash_secret, hint
from schemas.keys import AccountCreated, KeyCreated, KeyEventModel, KeyType
from schemas.plans import Plan
from schemas.utc import to_epoch_ms, utc_now
from streams.worker.keys_agent import fold_key_events, restore
from streams.worker.ports import AccountHistory, InsertBlock, KeyChanges, OffsetRange

BIG_ACCOUNT = "acc_bigcorp"
TOPIC = "bench.requests"
MARKER = "bench-api-loaded.json"
_HOUR_MS = 3_600_000
_ROUTES = np.array(["/v1/render", "/v1/templates/{id}", "/v1/images", "/v1/fonts"], dtype=object)
_METHODS = np.array(["GET", "POST"], dtype=object)
_STATUS = np.array([200, 201, 204, 304, 400, 401, 404, 429, 500, 502, 503])
_STATUS_P = np.array([0.82, 0.04, 0.02, 0.04, 0.02, 0.01, 0.02, 0.01, 0.01, 0.005, 0.005])
_IPS_PER_KEY = 8


@dataclass(frozen=True)
class LoadParams:
    events: int = 50_000_000
    keys: int = 10_000
    big_account_keys: int = 1_000
    block_rows: int = 50_000
    days: int = 30
    zipf_s: float = 1.0
    seed: int = 20_240_601


@dataclass(frozen=True)
class Key:
    account_id: str
    key_id: str
    key_type: str
    weight: float


@dataclass(frozen=True)
class Dataset:
    params: LoadParams
    anchor: datetime
    """The `now` the data was generated for: events lie in [anchor - days, anchor]."""
    keys: list[Key]

    @property
    def query_now(self) -> datetime:
        """The clock for queries: the last half past the hour at or before the anchor.

        Half past, so that the 7d and 30d windows have partial hours at both ends.
        """
        half = self.anchor.replace(minute=30, second=0, microsecond=0)
        return half if half <= self.anchor else half - timedelta(hours=1)

    def big_account_keys(self) -> list[Key]:
        return [k for k in self.keys if k.account_id == BIG_ACCOUNT]


def plan_keys(params: LoadParams) -> list[Key]:
    """Keys, their accounts and traffic weights (Zipf over a shuffled rank)."""
    rng = np.random.default_rng(params.seed)
    ranks = rng.permutation(params.keys) + 1
    raw = 1.0 / np.power(ranks.astype(np.float64), params.zipf_s)
    weights = raw / raw.sum()
    sizes = (1, 2, 5, 10, 20, 50)
    accounts: list[str] = [BIG_ACCOUNT] * params.big_account_keys
    n_account = 0
    while len(accounts) < params.keys:
        size = sizes[n_account % len(sizes)]
        accounts += [f"acc_bench{n_account:05d}"] * min(size, params.keys - len(accounts))
        n_account += 1
    return [
        Key(
            account_id=accounts[i],
            key_id=f"key_bench{i:05d}",
            key_type="test" if i % 5 == 4 else "live",
            weight=float(weights[i]),
        )
        for i in range(params.keys)
    ]


def _hour_counts(params: LoadParams, rng: np.random.Generator) -> np.ndarray:
    """Events per hour slot, oldest first: growth towards today times a daily curve."""
    hours = params.days * 24
    idx = np.arange(hours)
    growth = 0.6 + 0.4 * idx / hours
    hour_of_day = idx % 24
    daily = 1.0 + 0.7 * np.sin((hour_of_day - 9) / 24 * 2 * math.pi)
    weights = growth * daily
    counts: np.ndarray = rng.multinomial(params.events, weights / weights.sum())
    return counts


class BlockSource:
    """Builds the i-th insert block (time-ordered) of the dataset, deterministically."""

    def __init__(self, dataset: Dataset) -> None:
        p = dataset.params
        self._p = p
        rng = np.random.default_rng(p.seed + 1)
        self._cum = np.cumsum(_hour_counts(p, rng))
        self._start_ms = to_epoch_ms(dataset.anchor) - p.days * 24 * _HOUR_MS
        self._cdf = np.cumsum([k.weight for k in dataset.keys])
        self._cdf[-1] = 1.0
        self._key_ids = np.array([k.key_id for k in dataset.keys], dtype=object)
        self._accounts = np.array([k.account_id for k in dataset.keys], dtype=object)
        self._test = np.array([k.key_type == "test" for k in dataset.keys])
        self._ips = np.array(
            [
                f"10.{(k >> 8) & 255}.{k & 255}.{j + 1}"
                for k in range(p.keys)
                for j in range(_IPS_PER_KEY)
            ],
            dtype=object,
        )
        self._status_cdf = np.cumsum(_STATUS_P / _STATUS_P.sum())

    @property
    def blocks(self) -> int:
        return -(-self._p.events // self._p.block_rows)

    def block(self, i: int) -> InsertBlock:
        p = self._p
        first = i * p.block_rows
        n = min(p.block_rows, p.events - first)
        rng = np.random.default_rng([p.seed, i])
        hour = np.searchsorted(self._cum, np.arange(first, first + n), side="right")
        occurred = np.sort(self._start_ms + hour * _HOUR_MS + rng.integers(0, _HOUR_MS, n))
        key = np.searchsorted(self._cdf, rng.random(n), side="right")
        route = rng.integers(0, len(_ROUTES), n)
        is_render = route == 0
        status = _STATUS[np.searchsorted(self._status_cdf, rng.random(n), side="right")]
        latency = np.round(rng.lognormal(3.4, 0.8, n), 3)
        prefix = rng.bytes(10).hex()
        uuid_head = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[13:16]}-8{prefix[17:20]}-"
        columns: dict[str, list[Any]] = {
            "event_id": [f"{uuid_head}{j:012x}" for j in range(first, first + n)],
            "occurred_at_ms": occurred.tolist(),
            "key_id": self._key_ids[key].tolist(),
            "account_id": self._accounts[key].tolist(),
            "method": _METHODS[(route != 0).astype(np.int64)].tolist(),
            "route": _ROUTES[route].tolist(),
            "status": status.tolist(),
            "latency_ms": latency.tolist(),
            "client_ip": self._ips[key * _IPS_PER_KEY + rng.integers(0, _IPS_PER_KEY, n)].tolist(),
            "bytes_out": rng.integers(200, 60_000, n).tolist(),
            "is_render": is_render.tolist(),
            "watermarked": (is_render & self._test[key]).tolist(),
            "src_partition": [0] * n,
            "src_offset": list(range(first, first + n)),
        }
        return InsertBlock(
            topic=TOPIC,
            ranges=[OffsetRange(0, first, first + n - 1)],
            columns=columns,
            count=n,
            max_occurred_at_ms=int(occurred[-1]),
        )


def key_events(dataset: Dataset) -> list[KeyEventModel]:
    """Each account's chain, created a little before its keys' first possible event: its
    `account.created`, then its keys in order, each with the account's next `seq` and
    `prev`. Secrets are generated and dropped at once (only hashes and hints are kept)."""
    created = dataset.anchor - timedelta(days=dataset.params.days + 1)
    heads: dict[str, KeyEventModel] = {}
    events: list[KeyEventModel] = []
    for i, k in enumerate(dataset.keys):
        at = created + timedelta(seconds=i)
        head = heads.get(k.account_id)
        if head is None:
            plan = Plan.ENTERPRISE if k.account_id == BIG_ACCOUNT else Plan.BUSINESS
            head = AccountCreated(
                account_id=k.account_id, seq=1, prev=None, plan=plan, occurred_at=at
            )
            events.append(head)
        secret = generate_secret(k.key_type)
        key = KeyCreated(
            account_id=k.account_id,
            seq=head.seq + 1,
            prev=head.event_id,
            occurred_at=at,
            key_id=k.key_id,
            name=f"{k.key_type} key {i}",
            key_type=KeyType(k.key_type),
            secret_hash=hash_secret(secret),
            hint=hint(secret),
        )
        events.append(key)
        heads[k.account_id] = key
    return events


def key_changes(dataset: Dataset) -> KeyChanges:
    """What the keys agent writes for `key_events` on an empty projection."""
    accounts = {k.account_id for k in dataset.keys}
    states = {a: restore(AccountHistory(a)) for a in accounts}
    changes = fold_key_events(states, key_events(dataset))
    assert not changes.anomalies, changes.anomalies[:3]
    return changes


def read_marker(data_dir: Path, params: LoadParams) -> datetime | None:
    """The anchor of a complete load with these parameters in `data_dir`, if any."""
    path = data_dir / MARKER
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("params") != asdict(params) or not saved.get("complete"):
        return None
    return datetime.fromisoformat(saved["anchor"])


def write_marker(data_dir: Path, params: LoadParams, anchor: datetime, **info: Any) -> None:
    body = {"params": asdict(params), "anchor": anchor.isoformat(), "complete": True, **info}
    (data_dir / MARKER).write_text(json.dumps(body, indent=2))


def load(
    client: Client,
    dataset: Dataset,
    on_block: Callable[[int, int], None],
) -> dict[str, float]:
    """Insert the keys and every block; return timings (generation vs insert seconds)."""
    ClickHouseKeyStore(client).save(key_changes(dataset))
    store = ClickHouseIngestStore(client)
    source = BlockSource(dataset)
    gen_s = insert_s = 0.0
    for i in range(source.blocks):
        t0 = time.perf_counter()
        block = source.block(i)
        t1 = time.perf_counter()
        store.write(block)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        insert_s += t2 - t1
        on_block(i, block.count)
    return {"generate_s": gen_s, "insert_s": insert_s}


def anchor_now() -> datetime:
    """The last half past the hour: queries then see windows with partial hours."""
    now = utc_now()
    half = now.replace(minute=30, second=0, microsecond=0)
    return half if half <= now else half - timedelta(hours=1)
