"""In-memory implementations of alerting's ports, for unit tests.

`tests/contract/` runs the same tests against these and against the ClickHouse adapters in
`projections` (`alert_queries`, `alert_store`), so each fake behaves as its adapter does
through the port. Besides the port methods, each fake has seeding methods and test
switches (`fail`), and keeps what it was given in plain attributes for assertions.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alerting.ports import (
    DeliveryLookup,
    DeliveryRecord,
    DeliveryStatus,
    DisabledEndpoint,
    RuleChange,
    StatsByKey,
    StatsQuery,
    WindowStats,
)
from schemas.alerts import AlertHistoryEntry, AlertInstance, AlertRule, Notification, RuleKind
from schemas.utc import to_epoch_ms

# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Requests:
    """`count` requests of one key at `at`, all with `status` and `latency_ms`."""

    account_id: str
    key_id: str
    at: datetime
    count: int = 1
    status: int = 200
    latency_ms: float = 12.5


@dataclass(frozen=True)
class _Key:
    name: str
    status: str
    version: int


@dataclass(frozen=True)
class _Landed:
    max_occurred_at: datetime
    ends: dict[int, int]
    events: int


def _window(query: StatsQuery, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): the `window_s` that ends with the minute containing `now`."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(seconds=query.window_s), end


def _in_scope(query: StatsQuery, account: str, key: str, owned: bool) -> bool:
    """The adapter's filter: the query's accounts, then whole accounts (only the keys the
    registry says the account owns, `owned`) or the listed keys."""
    accounts = set(query.accounts) | {a for a, _ in query.key_pairs}
    keys = {k for _, k in query.key_pairs}
    return account in accounts and ((account in query.accounts and owned) or key in keys)


def _quantile(latencies: list[float], q: float) -> float:
    """Nearest-rank quantile (exact; ClickHouse's t-digest agrees on uniform latencies)."""
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _stats(query: StatsQuery, rows: list[Requests]) -> WindowStats:
    requests = sum(r.count for r in rows)
    errors = sum(r.count for r in rows if r.status >= 400) if query.errors else 0
    if not query.quantiles or not requests:
        return WindowStats(requests, errors)
    latencies = [r.latency_ms for r in rows for _ in range(r.count)]
    p50, p95, p99 = (_quantile(latencies, q) for q in (0.5, 0.95, 0.99))
    return WindowStats(requests, errors, p50, p95, p99)


class FakeQueries:
    """`EvaluationQueries` over in-memory requests, key registry and landed blocks.

    Seed with `add_requests`, `add_key` and `land`; `fail` holds rule kinds whose
    queries raise; `calls` records every `window_stats` query.
    """

    def __init__(self) -> None:
        self.requests: list[Requests] = []
        self.keys: dict[tuple[str, str], _Key] = {}
        self.landed: list[_Landed] = []
        self.fail: set[RuleKind] = set()
        self.calls: list[StatsQuery] = []
        self._versions = itertools.count(1)

    # seeding

    def add_requests(self, *requests: Requests) -> None:
        self.requests.extend(requests)

    def add_key(self, account_id: str, key_id: str, name: str, status: str = "active") -> None:
        """Register a key or change it (the newest call wins)."""
        self.keys[(account_id, key_id)] = _Key(name, status, next(self._versions))

    def land(
        self, max_occurred_at: datetime, ends: dict[int, int] | None = None, events: int = 1
    ) -> None:
        """An ingest block landed: its newest event, its last offset per partition."""
        self.landed.append(_Landed(max_occurred_at, dict(ends or {}), events))

    # the port

    def window_stats(self, query: StatsQuery, now: datetime) -> StatsByKey:
        self.calls.append(query)
        if query.kind in self.fail:
            raise RuntimeError("clickhouse down")
        if not query.accounts and not query.key_pairs:
            return {}
        start, end = _window(query, now)
        rows: dict[tuple[str, str], list[Requests]] = defaultdict(list)
        for r in self.requests:
            if start <= r.at < end and _in_scope(query, r.account_id, r.key_id, self._owns(r)):
                rows[(r.account_id, r.key_id)].append(r)
        out: StatsByKey = {pair: _stats(query, found) for pair, found in rows.items()}
        if query.kind is RuleKind.REQUEST_COUNT and query.accounts:
            for (account, key), state in self.keys.items():
                if account in query.accounts and state.status == "active":
                    out.setdefault((account, key), WindowStats(0))
        return out

    def _owns(self, r: Requests) -> bool:
        """Whether the registry says the request's account owns its key (not deleted)."""
        state = self.keys.get((r.account_id, r.key_id))
        return state is not None and state.status != "deleted"

    def ingest_watermark(self) -> datetime | None:
        times = [b.max_occurred_at for b in self.landed if b.events > 0]
        return max(times) if times else None

    def ingest_offsets(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for block in self.landed:
            for partition, end in block.ends.items():
                out[partition] = max(end, out.get(partition, end))
        return out

    def key_names(self, key_ids: Sequence[str]) -> dict[str, str]:
        newest: dict[str, _Key] = {}
        for (_, key), state in self.keys.items():
            if key in key_ids and (key not in newest or state.version > newest[key].version):
                newest[key] = state
        return {k: s.name for k, s in newest.items() if s.name}


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class _RuleRow:
    rule_id: str
    definition: AlertRule | None
    deleted: bool
    version: int


class FakeRules:
    """`RuleStore` and `RuleSource` over in-memory rule rows (the newest version wins).

    `FakeRules(rules, deleted)` starts with `rules` current (versions 0, 1, ...) and each
    of `deleted` created and then deleted (versions from 100 on).
    """

    def __init__(self, rules: Iterable[AlertRule] = (), deleted: Iterable[AlertRule] = ()) -> None:
        self.rows: list[_RuleRow] = []
        at = datetime(2025, 1, 1, tzinfo=UTC)
        self.apply([RuleChange(r.rule_id, r.account_id, r, i, at) for i, r in enumerate(rules)])
        for i, r in enumerate(deleted):
            self.apply(
                [
                    RuleChange(r.rule_id, r.account_id, r, 100 + 2 * i, at),
                    RuleChange(r.rule_id, r.account_id, None, 101 + 2 * i, at),
                ]
            )

    def apply(self, changes: Sequence[RuleChange]) -> None:
        """One row per change; a deletion keeps the rule's newest definition."""
        for c in changes:
            definition = c.rule if c.rule is not None else self._definition(c.rule_id)
            self.rows.append(_RuleRow(c.rule_id, definition, c.rule is None, c.version))

    def _definition(self, rule_id: str) -> AlertRule | None:
        defined = [r for r in self.rows if r.rule_id == rule_id and r.definition is not None]
        return max(defined, key=lambda r: r.version).definition if defined else None

    def _newest(self) -> list[_RuleRow]:
        newest: dict[str, _RuleRow] = {}
        for row in self.rows:
            if row.rule_id not in newest or row.version > newest[row.rule_id].version:
                newest[row.rule_id] = row
        return sorted(newest.values(), key=lambda r: r.rule_id)

    def load_rules(self) -> list[tuple[AlertRule, int]]:
        current = [
            (r.definition, r.version)
            for r in self._newest()
            if not r.deleted and r.definition is not None
        ]
        return sorted(current, key=lambda p: (p[0].account_id, p[0].rule_id))

    def load_deleted_rules(self) -> list[tuple[AlertRule, int]]:
        return [
            (r.definition, r.version)
            for r in self._newest()
            if r.deleted and r.definition is not None
        ]


# --------------------------------------------------------------------------- state


class FakeState:
    """`AlertStateStore` in memory, plus `history(fingerprint)` as the adapter has.

    `entries` holds every saved history entry in order, `latest` the newest saved state
    per fingerprint.
    """

    def __init__(self) -> None:
        self.entries: list[AlertHistoryEntry] = []
        self.latest: dict[str, AlertInstance] = {}
        self.tokens: set[str] = set()

    def load_instances(self) -> list[AlertInstance]:
        return list(self.latest.values())

    def save(
        self, history: Sequence[AlertHistoryEntry], instances: Sequence[AlertInstance], token: str
    ) -> None:
        if token in self.tokens:
            return
        self.tokens.add(token)
        self.entries.extend(history)
        self.latest.update({i.fingerprint: i for i in instances})

    def history(self, fingerprint: str) -> list[AlertHistoryEntry]:
        """Every transition of one instance, oldest first."""
        mine = [h for h in self.entries if h.instance.fingerprint == fingerprint]
        return sorted(mine, key=lambda h: h.at)


class FakePublisher:
    """`NotificationPublisher` that keeps what it sent; `fail` makes it raise."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.fail = False

    async def publish(self, notifications: Sequence[Notification]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.extend(notifications)


# --------------------------------------------------------------------------- delivery


class MemoryLog:
    """`DeliveryLog` in memory: `rows` in append order, `endpoints` disabled or not."""

    def __init__(self) -> None:
        self.rows: list[DeliveryRecord] = []
        self.endpoints: dict[str, bool] = {}

    def append(self, records: Sequence[DeliveryRecord]) -> None:
        self.rows.extend(records)

    def _latest(self) -> dict[str, DeliveryRecord]:
        return {r.delivery_id: r for r in self.rows}

    def latest(self, delivery_ids: Sequence[str]) -> DeliveryLookup:
        out = DeliveryLookup()
        for did, r in self._latest().items():
            if did in delivery_ids:
                out.status[did], out.attempts[did] = r.status, r.attempt
        return out

    def open_deliveries(self) -> list[DeliveryRecord]:
        return [r for r in self._latest().values() if r.status in DeliveryStatus.OPEN]

    def disabled_endpoints(self) -> set[str]:
        return {c for c, off in self.endpoints.items() if off}

    def set_endpoint(self, endpoint: DisabledEndpoint) -> None:
        self.endpoints[endpoint.channel_id] = endpoint.disabled


# --------------------------------------------------------------------------- clocks


class Wall:
    """A wall clock the test moves by hand (`now`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Landed:
    """A `LandedBlock`: `count` events, the newest at `at`."""

    def __init__(self, at: datetime, count: int = 10) -> None:
        self.count = count
        self.max_occurred_at_ms = to_epoch_ms(at)
