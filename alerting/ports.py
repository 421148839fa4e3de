"""What the evaluator, rules agent and notifier need from the outside world.

Small protocols, implemented by ClickHouse and Kafka adapters in `projections` and wired
in `infra`. The synchronous ones are called off the event loop (an executor); the async
ones (publishing) run on it. Plain data crosses these boundaries, never clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from schemas.alerts import (
    AlertHistoryEntry,
    AlertInstance,
    AlertRule,
    ErrorClass,
    IpGranularity,
    Notification,
    RuleKind,
)

# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """The rule fields besides kind and window that change what a query reads (rules that
    differ in them cannot share a query): `unknown_ip`'s lookback and granularity,
    `error_pattern`'s status class and baseline lookback. Defaults for the other kinds."""

    lookback_s: int = 0
    granularity: IpGranularity | None = None
    status_class: ErrorClass | None = None

    @classmethod
    def of(cls, rule: AlertRule) -> QueryOptions:
        if rule.kind is RuleKind.UNKNOWN_IP:
            return cls(rule.lookback_s or 0, rule.granularity)
        if rule.kind is RuleKind.ERROR_PATTERN:
            return cls(rule.lookback_s or 0, status_class=rule.status_class)
        return cls()


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """One batched read: every key of `accounts` plus `keys`, over one window, for one kind.

    `key_pairs` holds (account_id, key_id) of key-scoped rules; `accounts` the accounts of
    account-scoped rules (all their keys). `quantiles` asks for p50/p95/p99 too.
    """

    kind: RuleKind
    window_s: int
    accounts: tuple[str, ...] = ()
    key_pairs: tuple[tuple[str, str], ...] = ()
    options: QueryOptions = QueryOptions()

    @property
    def quantiles(self) -> bool:
        return self.kind is RuleKind.LATENCY

    @property
    def errors(self) -> bool:
        return self.kind is RuleKind.ERROR_RATE


@dataclass(frozen=True, slots=True)
class StalePresentations:
    """A revoked or expired key presented within a window (`stale_key_presented`), with
    what the key registry says about it (None where the registry has no row)."""

    revoked: int
    """Verdicts `revoked` in the window."""
    expired: int
    """Verdicts `expired` in the window."""
    last_at: datetime
    last_ip: str
    """The client IP of the newest presentation ("" when the API gave none)."""
    name: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    expires_at: datetime | None = None
    replaced_by: str | None = None

    @property
    def presented(self) -> int:
        return self.revoked + self.expired


SPIKE_LAG_DAYS = 42
"""`usage_spike` reads the same window 1 … 42 days earlier (6 weeks)."""


@dataclass(frozen=True, slots=True)
class SpikeHistory:
    """`usage_spike`: one key's requests in the window and the same window earlier.

    `lags[d - 1]` is the requests of the window that ends `d` days before this one
    (d = 1 … `SPIKE_LAG_DAYS`), estimated from the hour rollup (an hour that overlaps the
    window partly counts with the overlap's share); None for a lag unless the key is
    known to have sent by the end of its window (its first hour with requests among the
    hours read, or the end of its first day with requests); `history_start` is the start
    of the key's first day with requests within the 6 weeks.
    """

    current: int
    lags: tuple[float | None, ...]
    history_start: datetime | None
    name: str | None = None
    """The key's display name (None: not in the registry)."""


@dataclass(frozen=True, slots=True)
class NewAddress:
    """`unknown_ip`: one address (or /24, /48 network: `subject`) first used by the key
    within the window, with its use in the window."""

    subject: str
    first_seen: datetime
    last_seen: datetime
    requests: int


@dataclass(frozen=True, slots=True)
class AddressHistory:
    """`unknown_ip`: one key's new addresses and what it used before.

    `new` holds the addresses (or networks) whose first use within the lookback lies in
    the window, `known` how many others the key used within the lookback, `history_start`
    the key's first request the rollup remembers, `allowed_cidrs` the key's allow-list
    (an address inside it is never unknown).
    """

    new: tuple[NewAddress, ...]
    known: int
    history_start: datetime | None
    allowed_cidrs: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorHistory:
    """`error_pattern`: one key's requests and errors of the rule's class in the window,
    and over the baseline (the lookback before the window)."""

    requests: int
    errors: int
    baseline_requests: int
    baseline_errors: int
    history_start: datetime | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StuffingSource:
    """`credential_stuffing`: one client IP's bad presentations within the window.

    `distinct_keys` counts the distinct keys (a registry key by its id, an unknown or
    malformed one by the digest of the presented string) whose verdict was not valid;
    `outcomes` the presentations per verdict.
    """

    client_ip: str
    distinct_keys: int
    attempts: int
    outcomes: tuple[tuple[str, int], ...]
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One key's figures over one window (quantiles None unless asked for and requests > 0).

    For `stale_key_presented`, `requests` counts the presentations and `stale` holds them;
    each misuse kind fills its own field (`requests`: the window's requests, or for
    `credential_stuffing` the distinct bad keys).
    """

    requests: int
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    stale: StalePresentations | None = None
    spike: SpikeHistory | None = None
    addresses: AddressHistory | None = None
    error_history: ErrorHistory | None = None
    stuffing: StuffingSource | None = None


StatsByKey = dict[tuple[str, str], WindowStats]
"""(account_id, subject) -> figures; subjects without rows in the window are absent.
The subject is a key id, or `ip:<address>` for `credential_stuffing`."""


class EvaluationQueries(Protocol):
    """Read side of the evaluator (ClickHouse rollups and the key registry)."""

    def window_stats(self, query: StatsQuery, now: datetime) -> StatsByKey:
        """Figures per key for the window that ends with the minute containing `now`.

        `stale_key_presented`: the keys presented while revoked or expired in the window
        (`verification_outcomes`), with their registry details (one query). Otherwise:
        keys with traffic in the window (over whole accounts: only the keys the key
        registry says the account owns, deleted ones excluded); for `request_count` over
        whole accounts also every active key of those accounts without any
        (`WindowStats(0)`), so rules on low traffic see keys that went silent.
        """
        ...

    def ingest_watermark(self) -> datetime | None:
        """The newest `occurred_at` that has landed (None before any data)."""
        ...

    def ingest_offsets(self) -> dict[int, int]:
        """Highest requests-topic offset written to ClickHouse, per partition."""
        ...

    def key_names(self, key_ids: Sequence[str]) -> dict[str, str]:
        """Display names of the known keys among `key_ids`."""
        ...


EndOffsets = Callable[[], Awaitable[dict[int, int] | None]]
"""The requests topic's end offsets per partition (None: unknown), from Kafka."""


class RuleSource(Protocol):
    def load_rules(self) -> list[tuple[AlertRule, int]]:
        """Every current (not deleted) rule with its version, enabled or not."""
        ...

    def load_deleted_rules(self) -> list[tuple[AlertRule, int]]:
        """The last definition of every deleted rule, with the deletion's version."""
        ...


class AlertStateStore(Protocol):
    """Persisted instance state and the append-only transition log."""

    def load_instances(self) -> list[AlertInstance]:
        """The latest persisted state of every instance."""
        ...

    def save(
        self, history: Sequence[AlertHistoryEntry], instances: Sequence[AlertInstance], token: str
    ) -> None:
        """Append `history` and upsert `instances`; a retried call with `token` is a no-op."""
        ...


class NotificationPublisher(Protocol):
    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Return once the broker confirmed every notification (keyed by fingerprint)."""
        ...


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule event as the projection sees it: `rule` is None for a deletion."""

    rule_id: str
    account_id: str
    rule: AlertRule | None
    version: int
    at: datetime


class RuleStore(Protocol):
    def apply(self, changes: Sequence[RuleChange]) -> None:
        """Write the changes to `alert_rules` (replacing by version)."""
        ...


# --------------------------------------------------------------------------- delivery


class DeliveryStatus:
    """Status of a delivery after its latest row (plain strings, stored as such)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"
    DISABLED = "disabled"
    ALL = (PENDING, DELIVERED, RETRYING, DEAD, DISABLED)

    OPEN = frozenset({PENDING, RETRYING})


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One `deliveries` row: a delivery (notification x channel) after an attempt.

    A pending row (written when the delivery is accepted) carries the attempts made so
    far (0 for a new delivery); `round_offset` counts attempts of earlier rounds (before
    a replay), so the retry schedule restarts with each round.
    """

    delivery_id: str
    notification: Notification
    channel_index: int
    channel_id: str
    attempt: int
    at: datetime
    status: str
    outcome: str = ""
    detail: str = ""
    next_attempt_at: datetime | None = None
    first_attempt_at: datetime | None = None
    round_offset: int = 0
    replay: bool = False


@dataclass(frozen=True, slots=True)
class DisabledEndpoint:
    channel_id: str
    channel_type: str
    reason: str
    at: datetime
    disabled: bool = True


@dataclass
class DeliveryLookup:
    """Latest status per delivery id, and the endpoints currently disabled."""

    status: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)


class DeliveryLog(Protocol):
    def append(self, records: Sequence[DeliveryRecord]) -> None: ...

    def latest(self, delivery_ids: Sequence[str]) -> DeliveryLookup:
        """Latest status and attempt number of each known delivery among the ids."""
        ...

    def open_deliveries(self) -> list[DeliveryRecord]:
        """Latest row of every delivery still pending or retrying (to resume after a restart)."""
        ...

    def disabled_endpoints(self) -> set[str]: ...

    def set_endpoint(self, endpoint: DisabledEndpoint) -> None:
        """Disable (or re-enable, `disabled=False`) an endpoint."""
        ...
