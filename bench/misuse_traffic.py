"""Seeded, labelled traffic for the misuse-detection benchmark (`bench.misuse`). Pure: the
result depends only on the arguments (one `random.Random(seed)`), no clock, no I/O.

The model (`generate`): keys in accounts, `days` (6 weeks) of traffic ending at `end`.

- Per key a peak rate (requests per hour at a weekday's busiest hour): most keys
  log-uniform 1..60, a few busy ones 60..400; a daily shape (night ~0.1 of the peak, the
  working day 1.0, by UTC hour), a weekly shape (days 5 and 6 of every 7 counted from the
  start are the weekend, at `WEEKEND` of a weekday), one holiday (a weekday at weekend
  level, for every key), multiplicative noise per key-day and per key-hour (lognormal),
  then Poisson counts.
- Per key a small stable set of client IPs drawn from its account's servers (some
  accounts IPv6), with fixed weights; per key a baseline error share (most 0.5-2 %, a
  noisy 30 % 2-8 %, and `HIGH_ERROR_KEYS` of them 15-40 %), mostly 404/400/429, some 401
  and 5xx.
- Verification outcomes: each key-hour with requests one `valid` row (count = its
  requests); background noise of bad verifications: typos (an account server presenting an
  unknown string now and then), retry storms (one server presenting the same unknown
  string 20-60 times within 10 minutes) and small scans (an IP presenting 3-7 distinct
  unknown strings within an hour).

Labelled anomalies, all in the final `eval_days` (two weeks), at most one per key:

- `usage_spike`: the key's rate times 2, 5 or 10 for 1-3 hours at any hour of the day;
  placed only where the spiked first hour expects >= `SPIKE_MIN_REQUESTS` requests (below
  the volume floor no detector should fire: "3 -> 12 requests is not an alarm").
- `unknown_ip`: requests from an address the key never used (half of them inside one of
  its known /24 or /48 networks, half in a new network), added at 4..30 per hour for
  1-6 hours. The label spans the first to the last of them.
- `error_pattern`: the key's error share raised by 25-60 points for 45-120 minutes
  (40 % of the bursts all 401, the others a 4xx/5xx mix), on keys and hours expecting
  >= `BURST_MIN_PER_15M` requests per 15 minutes.
- `credential_stuffing`: one new IP presenting 15-40 distinct unknown strings within
  2-5 minutes, plus 1-2 revoked keys of the target account (the account the burst is
  attributed to: see `projections.detector_queries.stuffing`). Each revoked key it
  presents is also labelled `stale_key_presented`.
- `stale_key_presented`: a key revoked before the final two weeks (its requests stop
  then) presented again 3-20 times over 1-4 hours from one of its old IPs.

Labels are `Label(kind, account_id, subject, start, end, size)` with `subject` a key id or
`ip:<address>` and `size` the spike factor, the new IP's requests, the error share's rise
in points, the distinct bad strings, or the presentations.

The events come out time-ordered in blocks (`blocks`), as columns ready for
`projections.writers.ClickHouseIngestStore` (request columns: `schemas.request_columns.
COLUMNS`; outcome columns: event_id, occurred_at_ms, outcome, key_id, account_id,
client_ip, count, presented_digest); a block closes at the end of the first hour that
brings it to `max_events` request rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.utc import from_epoch_ms, to_epoch_ms

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DAILY = (
    0.10, 0.08, 0.08, 0.08, 0.10, 0.15, 0.25, 0.45, 0.75, 0.95, 1.0, 1.0,
    0.95, 1.0, 1.0, 0.95, 0.9, 0.8, 0.65, 0.5, 0.4, 0.3, 0.2, 0.14,
)  # fmt: skip
"""The daily shape by UTC hour (share of the peak rate)."""
WEEKEND = 0.45
DAY_NOISE = 0.10
HOUR_NOISE = 0.20
SPIKE_SIZES = (2.0, 5.0, 10.0)
SPIKE_MIN_REQUESTS = 100
BURST_MIN_PER_15M = 25
ERROR_STATUSES = (404, 404, 404, 400, 400, 429, 401, 403, 500, 502, 503)
BURST_MIX = (400, 403, 404, 429, 500, 500, 502, 503)
ROUTES = ("/v1/render", "/v1/images", "/v1/templates", "/v1/usage", "/v1/search")
METHODS = ("GET", "GET", "POST", "PUT")


@dataclass(frozen=True, slots=True)
class KeyProfile:
    account_id: str
    key_id: str
    name: str
    rate: float
    """Requests per hour at a weekday's peak hour."""
    error_share: float
    ips: tuple[str, ...]
    cum_weights: tuple[float, ...]
    route: str
    method: str
    revoked_at: datetime | None = None
    """When the key was revoked (its requests stop then); None: active."""


@dataclass(frozen=True, slots=True)
class Label:
    kind: str
    account_id: str
    subject: str
    start: datetime
    end: datetime
    size: float


@dataclass(frozen=True, slots=True)
class Spike:
    key: int
    start_ms: int
    end_ms: int
    factor: float


@dataclass(frozen=True, slots=True)
class NewIp:
    key: int
    ip: str
    times_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ErrorBurst:
    key: int
    start_ms: int
    end_ms: int
    extra_share: float
    statuses: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """One verification outcome row (`presented_digest` "" unless keyless)."""

    at_ms: int
    outcome: str
    key_id: str | None
    account_id: str | None
    client_ip: str
    count: int = 1
    presented_digest: str = ""


@dataclass
class Traffic:
    seed: int
    start: datetime
    end: datetime
    eval_start: datetime
    holiday: int
    """Day index (from `start`) of the holiday."""
    keys: list[KeyProfile]
    labels: list[Label]
    spikes: list[Spike] = field(default_factory=list)
    new_ips: list[NewIp] = field(default_factory=list)
    bursts: list[ErrorBurst] = field(default_factory=list)
    outcomes: list[OutcomeEvent] = field(default_factory=list)
    """Every verification outcome besides the per key-hour `valid` rows, time-ordered."""

    @property
    def accounts(self) -> list[str]:
        return sorted({k.account_id for k in self.keys})

    def is_weekend(self, day: int) -> bool:
        return day % 7 in (5, 6) or day == self.holiday

    def expected(self, key: KeyProfile, hour_ms: int) -> float:
        """The key's expected requests in the hour starting at `hour_ms` (no noise)."""
        start_ms = to_epoch_ms(self.start)
        day = (hour_ms - start_ms) // DAY_MS
        hour = (hour_ms // HOUR_MS) % 24
        return key.rate * DAILY[hour] * (WEEKEND if self.is_weekend(day) else 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _account_servers(rng: random.Random, a: int, v6: bool) -> list[str]:
    n = rng.randint(3, 10)
    if v6:
        net = f"2001:db8:{a:x}{rng.randrange(16):x}"
        return [f"{net}::{rng.randrange(1, 0xFFFF):x}" for _ in range(n)]
    nets = [f"{rng.randint(60, 126)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(2)]
    return [f"{rng.choice(nets)}.{rng.randint(1, 254)}" for _ in range(n)]


HIGH_ERROR_KEYS = 0.05
"""The share of keys whose usual error share is high (15-40 %): clients that look up what
often does not exist (404s) or retry into 429s as a matter of course. A key's "unusual"
errors are unusual against its own history; without such keys one global threshold
separates every burst from every usual share, which real traffic does not allow."""


def _keys(rng: random.Random, n_keys: int, n_accounts: int) -> list[KeyProfile]:
    servers = [_account_servers(rng, a, rng.random() < 0.15) for a in range(n_accounts)]
    out: list[KeyProfile] = []
    for i in range(n_keys):
        a = i % n_accounts
        busy = rng.random() < 0.07
        rate = _log_uniform(rng, 60, 400) if busy else _log_uniform(rng, 1, 60)
        kind = rng.random()
        if kind < HIGH_ERROR_KEYS:
            share = rng.uniform(0.15, 0.4)
        elif kind < HIGH_ERROR_KEYS + 0.3:
            share = rng.uniform(0.02, 0.08)
        else:
            share = rng.uniform(0.005, 0.02)
        ips = rng.sample(servers[a], min(len(servers[a]), rng.choice((1, 1, 2, 2, 3, 4))))
        weights = [1.0] + [rng.uniform(0.2, 1.0) for _ in ips[1:]]
        cum = [sum(weights[: j + 1]) for j in range(len(weights))]
        out.append(
            KeyProfile(
                account_id=f"acc_mis{a:03d}",
                key_id=f"key_mis{i:05d}",
                name=f"misuse bench {i}",
                rate=rate,
                error_share=share,
                ips=tuple(ips),
                cum_weights=tuple(cum),
                route=rng.choice(ROUTES),
                method=rng.choice(METHODS),
            )
        )
    return out


def _digest(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


class _Planner:
    """Places the anomalies (one per key) and the bad-verification noise."""

    def __init__(self, rng: random.Random, t: Traffic) -> None:
        self.rng = rng
        self.t = t
        self.used: set[int] = set()
        self.start_ms = to_epoch_ms(t.start)
        self.eval_ms = to_epoch_ms(t.eval_start)
        self.end_ms = to_epoch_ms(t.end)

    def label(self, kind: str, key: KeyProfile | None, subject: str, a: int, b: int, size: float,
              account: str | None = None) -> None:  # fmt: skip
        acc = account if account is not None else key.account_id if key else ""
        self.t.labels.append(
            Label(kind, acc, subject, from_epoch_ms(a), from_epoch_ms(b), round(size, 2))
        )

    def pick(self, accept: Any, tries: int = 4000, margin_h: int = 8) -> tuple[int, int] | None:
        """A free key and an hour in the final span with `accept(key, hour_ms)`."""
        rng, keys = self.rng, self.t.keys
        hours = (self.end_ms - self.eval_ms) // HOUR_MS - margin_h
        for _ in range(tries):
            k = rng.randrange(len(keys))
            if k in self.used or keys[k].revoked_at is not None:
                continue
            hour_ms = self.eval_ms + HOUR_MS * rng.randrange(2, hours)
            if accept(keys[k], hour_ms):
                self.used.add(k)
                return k, hour_ms
        return None

    def spikes(self, n: int) -> None:
        for i in range(n):
            factor = SPIKE_SIZES[i % len(SPIKE_SIZES)]

            def big_enough(key: KeyProfile, h: int, f: float = factor) -> bool:
                return self.t.expected(key, h) * f >= SPIKE_MIN_REQUESTS

            got = self.pick(big_enough)
            if got is None:
                continue
            k, hour_ms = got
            start = hour_ms + self.rng.randrange(60) * 60_000
            end = start + self.rng.randint(1, 3) * HOUR_MS
            self.t.spikes.append(Spike(k, start, end, factor))
            key = self.t.keys[k]
            self.label("usage_spike", key, key.key_id, start, end, factor)

    def new_ips(self, n: int) -> None:
        rng = self.rng
        for i in range(n):
            got = self.pick(lambda key, h: True)
            if got is None:
                continue
            k, hour_ms = got
            key = self.t.keys[k]
            known = key.ips[0]
            if i % 2 == 0:  # a new address inside a known network
                if ":" in known:
                    ip = f"{known.rsplit(':', 1)[0]}:{rng.randrange(0x1000, 0xFFFF):x}"
                else:
                    ip = f"{known.rsplit('.', 1)[0]}.{rng.randint(1, 254)}"
                    while ip in key.ips:
                        ip = f"{known.rsplit('.', 1)[0]}.{rng.randint(1, 254)}"
            else:  # a new network
                ip = f"185.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
            start = hour_ms + rng.randrange(60) * 60_000
            hours = rng.randint(1, 6)
            per_hour = rng.randint(4, 30)
            times = sorted(start + rng.randrange(hours * HOUR_MS) for _ in range(per_hour * hours))
            self.t.new_ips.append(NewIp(k, ip, tuple(times)))
            self.label("unknown_ip", key, key.key_id, times[0], times[-1], len(times))

    def bursts(self, n: int) -> None:
        rng = self.rng
        for i in range(n):
            got = self.pick(lambda key, h: self.t.expected(key, h) / 4 >= BURST_MIN_PER_15M)
            if got is None:
                continue
            k, hour_ms = got
            start = hour_ms + rng.randrange(60) * 60_000
            end = start + rng.randint(45, 120) * 60_000
            extra = rng.uniform(0.25, 0.6)
            statuses = (401,) if i % 5 < 2 else BURST_MIX
            self.t.bursts.append(ErrorBurst(k, start, end, extra, statuses))
            key = self.t.keys[k]
            self.label("error_pattern", key, key.key_id, start, end, extra * 100)

    def revoke(self, n: int) -> list[int]:
        """`n` free keys revoked 1-10 days before the final span (their requests stop)."""
        rng, keys = self.rng, self.t.keys
        out: list[int] = []
        while len(out) < n and len(self.used) < len(keys):
            k = rng.randrange(len(keys))
            if k in self.used:
                continue
            self.used.add(k)
            at = self.eval_ms - rng.randint(1, 10) * DAY_MS - rng.randrange(DAY_MS)
            keys[k] = _replace_revoked(keys[k], from_epoch_ms(at // 1000 * 1000))
            out.append(k)
        return out

    def reuse(self, revoked: list[int]) -> None:
        rng = self.rng
        span = (self.end_ms - self.eval_ms) // HOUR_MS - 8
        for k in revoked:
            key = self.t.keys[k]
            start = self.eval_ms + HOUR_MS * rng.randrange(2, span)
            times = sorted(
                start + rng.randrange(rng.randint(1, 4) * HOUR_MS)
                for _ in range(rng.randint(3, 20))
            )
            ip = key.ips[0]
            for at in times:
                self.t.outcomes.append(OutcomeEvent(at, "revoked", key.key_id, key.account_id, ip))
            self.label("stale_key_presented", key, key.key_id, times[0], times[-1], len(times))

    def stuffing(self, n: int, revoked_by_account: dict[str, list[int]]) -> None:
        rng = self.rng
        span = (self.end_ms - self.eval_ms) // HOUR_MS - 8
        accounts = sorted(revoked_by_account)
        for i in range(n):
            account = accounts[i % len(accounts)]
            ip = f"45.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
            start = self.eval_ms + HOUR_MS * rng.randrange(2, span) + rng.randrange(HOUR_MS)
            length = rng.randint(2, 5) * 60_000
            distinct = rng.randint(15, 40)
            rows = [
                OutcomeEvent(
                    start + rng.randrange(length), "unknown", None, None, ip, 1, _digest(rng)
                )
                for _ in range(distinct)
            ]
            pool = revoked_by_account[account]
            for k in rng.sample(pool, min(len(pool), rng.randint(1, 2))):
                key = self.t.keys[k]
                at = start + rng.randrange(length)
                rows.append(OutcomeEvent(at, "revoked", key.key_id, account, ip))
                self.label("stale_key_presented", key, key.key_id, at, at, 1)
            rows.sort(key=lambda r: r.at_ms)
            self.t.outcomes.extend(rows)
            self.label(
                "credential_stuffing", None, f"ip:{ip}", rows[0].at_ms, rows[-1].at_ms,
                len(rows), account=account,
            )  # fmt: skip

    def noise(self) -> None:
        """Bad verifications that are no attack (over the whole six weeks)."""
        rng, t = self.rng, self.t
        by_account: dict[str, list[str]] = {}
        for key in t.keys:
            by_account.setdefault(key.account_id, []).extend(key.ips)
        days = (self.end_ms - self.start_ms) // DAY_MS
        for _, ips in sorted(by_account.items()):
            for day in range(days):
                base = self.start_ms + day * DAY_MS
                for _ in range(rng.randint(0, 3)):  # typos
                    at = base + rng.randrange(DAY_MS)
                    outcome = "malformed" if rng.random() < 0.3 else "unknown"
                    t.outcomes.append(
                        OutcomeEvent(at, outcome, None, None, rng.choice(ips), 1, _digest(rng))
                    )
                if rng.random() < 0.08:  # a retry storm of one stale string
                    ip, digest = rng.choice(ips), _digest(rng)
                    at = base + rng.randrange(DAY_MS - HOUR_MS)
                    for _ in range(rng.randint(20, 60)):
                        t.outcomes.append(
                            OutcomeEvent(
                                at + rng.randrange(600_000), "unknown", None, None, ip, 1, digest
                            )
                        )
                if rng.random() < 0.05:  # a small scan
                    ip = f"31.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
                    at = base + rng.randrange(DAY_MS - HOUR_MS)
                    for _ in range(rng.randint(3, 7)):
                        t.outcomes.append(
                            OutcomeEvent(
                                at + rng.randrange(HOUR_MS), "unknown", None, None, ip, 1,
                                _digest(rng),
                            )
                        )  # fmt: skip


def _replace_revoked(key: KeyProfile, at: datetime) -> KeyProfile:
    return KeyProfile(
        key.account_id, key.key_id, key.name, key.rate, key.error_share, key.ips,
        key.cum_weights, key.route, key.method, revoked_at=at,
    )  # fmt: skip


def generate(
    seed: int,
    end: datetime,
    keys: int = 1000,
    accounts: int = 50,
    days: int = 42,
    eval_days: int = 14,
) -> Traffic:
    """The key profiles, the anomalies and their labels (see the module docstring).
    `end` must be a whole UTC hour; anomaly counts scale with `keys`."""
    if to_epoch_ms(end) % HOUR_MS:
        raise ValueError(f"end must be a whole UTC hour, got {end.isoformat()}")
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    t = Traffic(
        seed=seed,
        start=start,
        end=end,
        eval_start=end - timedelta(days=eval_days),
        holiday=_holiday(days - eval_days),
        keys=_keys(rng, keys, accounts),
        labels=[],
    )
    scale = keys / 1000
    plan = _Planner(rng, t)
    revoked = plan.revoke(max(2, round(10 * scale)))
    stuff_pool = plan.revoke(max(2, round(20 * scale)))
    plan.reuse(revoked)
    plan.spikes(max(3, round(60 * scale)))
    plan.new_ips(max(2, round(40 * scale)))
    plan.bursts(max(2, round(30 * scale)))
    by_account: dict[str, list[int]] = {}
    for k in stuff_pool:
        by_account.setdefault(t.keys[k].account_id, []).append(k)
    plan.stuffing(max(2, round(20 * scale)), by_account)
    plan.noise()
    t.outcomes.sort(key=lambda o: o.at_ms)
    t.labels.sort(key=lambda lb: (lb.start, lb.kind, lb.subject))
    return t


def _holiday(history_days: int) -> int:
    """A Wednesday (day 2 of a week) one to two weeks before the evaluated span."""
    week = max(0, history_days // 7 - 1)
    return week * 7 + 2


# --------------------------------------------------------------------------- events


@dataclass
class Block:
    """One insert's rows: request columns (plus the source position) and outcome columns."""

    requests: dict[str, list[Any]]
    outcomes: dict[str, list[Any]]
    count: int
    max_occurred_at_ms: int
    offset: int
    """The block's position in the simulated topic (partition 0)."""


_REQUEST_COLUMNS = (
    "event_id", "occurred_at_ms", "key_id", "account_id", "method", "route", "status",
    "latency_ms", "client_ip", "bytes_out", "is_render", "watermarked",
)  # fmt: skip
_OUTCOME_FIELDS = (
    "event_id", "occurred_at_ms", "outcome", "key_id", "account_id", "client_ip", "count",
    "presented_digest",
)  # fmt: skip


class _Builder:
    def __init__(self, seed: int) -> None:
        self.serial = 0
        self.seed = seed & 0xFFFF
        self.req: dict[str, list[Any]] = {c: [] for c in _REQUEST_COLUMNS}
        self.out: dict[str, list[Any]] = {c: [] for c in _OUTCOME_FIELDS}
        self.n_out = 0

    def take(self, offset: int) -> Block:
        n = len(self.req["event_id"])
        self.req["src_partition"] = [0] * n
        self.req["src_offset"] = [offset] * n
        self.out["src_partition"] = [0] * self.n_out
        self.out["src_offset"] = [offset] * self.n_out
        top = max(self.req["occurred_at_ms"], default=0)
        block = Block(self.req, self.out, n, top, offset)
        self.req = {c: [] for c in _REQUEST_COLUMNS}
        self.out = {c: [] for c in _OUTCOME_FIELDS}
        self.n_out = 0
        return block

    def uuid(self, kind: int) -> str:
        self.serial += 1
        s = self.serial
        return f"{self.seed:04x}{s >> 48:04x}-{(s >> 32) & 0xFFFF:04x}-7{kind:03x}-8000-{s & 0xFFFFFFFFFFFF:012x}"  # noqa: E501

    def outcome(self, o: OutcomeEvent) -> None:
        out = self.out
        out["event_id"].append(self.uuid(1))
        out["occurred_at_ms"].append(o.at_ms)
        out["outcome"].append(o.outcome)
        out["key_id"].append(o.key_id)
        out["account_id"].append(o.account_id)
        out["client_ip"].append(o.client_ip)
        out["count"].append(o.count)
        out["presented_digest"].append(o.presented_digest or None)
        self.n_out += 1


class _Events:
    """The per key-hour event maker of `blocks` (the anomalies indexed by key)."""

    def __init__(self, t: Traffic, rng: random.Random, builder: _Builder) -> None:
        self.t, self.rng, self.b = t, rng, builder
        self.latencies = [round(rng.lognormvariate(3.4, 0.6), 2) for _ in range(4096)]
        self.sizes = [rng.randrange(200, 60_000) for _ in range(1024)]
        self.spikes: dict[int, list[Spike]] = {}
        for s in t.spikes:
            self.spikes.setdefault(s.key, []).append(s)
        self.bursts: dict[int, list[ErrorBurst]] = {}
        for e in t.bursts:
            self.bursts.setdefault(e.key, []).append(e)
        self.new_by_hour: dict[tuple[int, int], list[int]] = {}
        for new in t.new_ips:
            for at in new.times_ms:
                self.new_by_hour.setdefault((new.key, at - at % HOUR_MS), []).append(at)
        self.new_ip = {new.key: new.ip for new in t.new_ips}
        self.revoked_ms = {
            i: to_epoch_ms(k.revoked_at) for i, k in enumerate(t.keys) if k.revoked_at
        }
        days = (to_epoch_ms(t.end) - to_epoch_ms(t.start)) // DAY_MS
        self.day_noise = [
            [rng.lognormvariate(0, DAY_NOISE) for _ in range(days + 1)] for _ in t.keys
        ]

    def times(self, i: int, key: KeyProfile, hour_ms: int, day: int) -> list[int]:
        """The key's request times in the hour (seasonal, noisy, spiked, until revoked)."""
        rng = self.rng
        lam = self.t.expected(key, hour_ms) * self.day_noise[i][day]
        lam *= rng.lognormvariate(-(HOUR_NOISE**2) / 2, HOUR_NOISE)
        times = [hour_ms + int(rng.random() * HOUR_MS) for _ in range(_poisson(rng, lam))]
        for s in self.spikes.get(i, ()):
            lo, hi = max(s.start_ms, hour_ms), min(s.end_ms, hour_ms + HOUR_MS)
            if lo < hi:
                extra = _poisson(rng, lam * (s.factor - 1) * (hi - lo) / HOUR_MS)
                times += [lo + int(rng.random() * (hi - lo)) for _ in range(extra)]
        if i in self.revoked_ms:
            times = [x for x in times if x < self.revoked_ms[i]]
        return times

    def statuses(self, i: int, key: KeyProfile, times: list[int]) -> list[int]:
        rng = self.rng
        statuses = [200] * len(times)
        for j in range(len(times)):
            if rng.random() < key.error_share:
                statuses[j] = rng.choice(ERROR_STATUSES)
        for e in self.bursts.get(i, ()):
            for j, x in enumerate(times):
                if e.start_ms <= x < e.end_ms and rng.random() < e.extra_share:
                    statuses[j] = rng.choice(e.statuses)
        return statuses

    def key_hour(self, i: int, key: KeyProfile, hour_ms: int, day: int) -> None:
        rng = self.rng
        times = self.times(i, key, hour_ms, day)
        ips = rng.choices(key.ips, cum_weights=key.cum_weights, k=len(times))
        extra_new = self.new_by_hour.get((i, hour_ms))
        if extra_new:
            times += extra_new
            ips += [self.new_ip[i]] * len(extra_new)
        n = len(times)
        if not n:
            return
        req = self.b.req
        req["event_id"] += [self.b.uuid(0) for _ in range(n)]
        req["occurred_at_ms"] += times
        req["key_id"] += [key.key_id] * n
        req["account_id"] += [key.account_id] * n
        req["method"] += [key.method] * n
        req["route"] += [key.route] * n
        req["status"] += self.statuses(i, key, times)
        req["latency_ms"] += rng.choices(self.latencies, k=n)
        req["client_ip"] += ips
        req["bytes_out"] += rng.choices(self.sizes, k=n)
        req["is_render"] += [False] * n
        req["watermarked"] += [False] * n
        self.b.outcome(OutcomeEvent(max(times), "valid", key.key_id, key.account_id, ips[0], n))


def blocks(t: Traffic, max_events: int = 50_000) -> Iterator[Block]:
    """Every request and outcome event, hour by hour, in blocks of about `max_events`
    request rows (a block closes at the end of the hour that reaches it)."""
    b = _Builder(t.seed)
    events = _Events(t, random.Random(t.seed * 7919 + 1), b)
    start_ms, end_ms = to_epoch_ms(t.start), to_epoch_ms(t.end)
    outcomes, o_i, offset = t.outcomes, 0, 0
    for hour_ms in range(start_ms, end_ms, HOUR_MS):
        day = (hour_ms - start_ms) // DAY_MS
        for i, key in enumerate(t.keys):
            events.key_hour(i, key, hour_ms, day)
        while o_i < len(outcomes) and outcomes[o_i].at_ms < hour_ms + HOUR_MS:
            b.outcome(outcomes[o_i])
            o_i += 1
        if len(b.req["event_id"]) >= max_events or hour_ms + HOUR_MS >= end_ms:
            yield b.take(offset)
            offset += 1
