"""What the worker's agents need from the outside world: small protocols and the values
that cross them. `projections` implements these and imports nothing else of `streams`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from schemas.key_ledger import KeyRecord
from schemas.keys import KeyEventModel
from schemas.request_columns import Columns


@dataclass(frozen=True)
class OffsetRange:
    partition: int
    start: int
    end: int  # inclusive


@dataclass
class InsertBlock:
    """Rows for one insert, with the source ranges that produced them."""

    topic: str
    ranges: list[OffsetRange]
    columns: Columns
    count: int
    max_occurred_at_ms: int
    encoded: object = None
    """The rows in the store's own wire form, when `IngestStore.encode` prepared them."""

    @property
    def token(self) -> str:
        spans = ",".join(f"{r.partition}:{r.start}-{r.end}" for r in self.ranges)
        return f"{self.topic}|{spans}"


@dataclass(frozen=True)
class LoggedWrite:
    """One write-ahead row of `ingest_batches`, as recovery reads it."""

    writer: str
    """The store instance that wrote it (one worker process from start to exit; "" for
    rows written before writers were recorded)."""
    seq: int
    """Orders the rows of one writer (and only those: each writer counts on its own)."""
    token: str
    ranges: tuple[OffsetRange, ...]
    """Empty for a marker row: a writer's note that its rows before it landed."""
    checkpoint: bool = False
    """Written after a replay: every row before it landed; nothing to re-apply."""


class Anomaly(StrEnum):
    """`key_anomalies` kinds that are not a refusal of the fold (those are recorded under
    their `schemas.key_ledger.Refusal` code)."""

    UNATTRIBUTED_REQUEST = "unattributed_request"
    """Request events for a key the registry does not know (counted per key and account)."""
    ACCOUNT_MISMATCH = "account_mismatch"
    """Request events sent under another account than the key's owner."""


class IngestStore(Protocol):
    """Where request rows land (ClickHouse), with the write-ahead record of each insert."""

    def watermarks(self, topic: str) -> dict[int, int]:
        """Highest source offset already written, per partition."""
        ...

    def recovery_log(self, topic: str) -> list[LoggedWrite]:
        """What recovery needs of the write-ahead log: every writer's newest row, and
        every row (of any writer) under the token of one of those."""
        ...

    def later_writes(self, tokens: list[str]) -> dict[str, int]:
        """Per token, how many write-ahead rows (of any topic and writer) were written
        since the first row under it, itself included: an upper bound on the inserts
        each table took since, which recovery holds against the deduplication window."""
        ...

    def encode(self, block: InsertBlock) -> None:
        """Prepare the block's rows for `write` (sets `block.encoded`). CPU work only, no
        I/O: safe on another thread than `write`'s, so it can run while a write does."""
        ...

    def write(self, block: InsertBlock) -> None:
        """Record the block's ranges (under this store's writer id and next seq), then
        insert its rows with its deduplication token (encoding them first unless `encode`
        did). A block without ranges writes a marker row only."""
        ...


@dataclass(frozen=True)
class AccountHistory:
    """What the projection holds of one account: its applied events in seq order (every
    one applied by the fold, `schemas.key_ledger.apply`) and the ids of the events it
    refused. Empty for an account it has never seen."""

    account_id: str
    applied: list[KeyEventModel] = field(default_factory=list)
    refused: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class AnomalyRecord:
    """A key event the fold refused (`anomaly` is the `Refusal` code); it changed nothing.
    `key_id` is "" for an account event."""

    account_id: str
    key_id: str
    event_id: UUID
    event_type: str
    anomaly: str
    detail: str
    occurred_at: datetime
    version: int


@dataclass(frozen=True)
class AuditEntry:
    """One applied event as the audit log shows it; `detail` says what changed."""

    event: KeyEventModel
    detail: str


@dataclass(frozen=True)
class AccountRecord:
    """An account's row: its state after its newest applied event (`seq`, `head`)."""

    account_id: str
    plan: str
    seq: int
    head: UUID
    created_at: datetime
    updated_at: datetime


@dataclass
class KeyChanges:
    """What one take of key events changes in the projection."""

    anomalies: list[AnomalyRecord] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    keys: list[KeyRecord] = field(default_factory=list)
    """The current record of every key the take touched."""
    accounts: list[AccountRecord] = field(default_factory=list)
    """The current row of every account the take touched."""

    def __bool__(self) -> bool:
        return bool(self.anomalies or self.audit or self.keys or self.accounts)


class KeyStore(Protocol):
    """The key registry projection (ClickHouse `key_audit`, `keys`, `accounts`,
    `key_anomalies`)."""

    def load(self, account_ids: list[str]) -> dict[str, AccountHistory]:
        """The history of each of `account_ids` (an empty one for an unknown account)."""
        ...

    def save(self, changes: KeyChanges) -> None:
        """Write the changes: anomalies first, then the audit rows (the applied events,
        which `load` reads back), then the key and account rows. Every row is a function
        of its event or of the fold, so writing the same changes again changes nothing,
        and a save that stopped halfway is completed by saving again."""
        ...


class UnattributedReason(StrEnum):
    """Why landed request events count toward no account (the metric's `reason` label)."""

    UNKNOWN_KEY = "unknown_key"
    """The registry does not know the key."""
    ACCOUNT_MISMATCH = "account_mismatch"
    """The key belongs to another account than the one the events were sent under."""

    @property
    def anomaly(self) -> Anomaly:
        """The `key_anomalies` kind recorded for it."""
        if self is UnattributedReason.UNKNOWN_KEY:
            return Anomaly.UNATTRIBUTED_REQUEST
        return Anomaly.ACCOUNT_MISMATCH


@dataclass(frozen=True)
class PairTotal:
    """All landed request events of `key_id` sent under `account_id` (since ingest began),
    with the key's owner in the registry (None: the registry does not know the key)."""

    account_id: str
    key_id: str
    events: int
    newest_at_ms: int
    owner: str | None


@dataclass(frozen=True)
class UnattributedEvents:
    """`events` landed request events of `key_id` sent under `account_id` found
    unattributed for `reason` (a running total: a later finding of the same account, key
    and reason replaces an earlier one). `newest_at_ms` is the newest event time of the
    pair (epoch ms); `owner` the account that owns the key (account mismatch only)."""

    account_id: str
    key_id: str
    reason: UnattributedReason
    events: int
    newest_at_ms: int
    owner: str | None = None


Recorded = dict[tuple[str, str, UnattributedReason], int]
"""(account_id, key_id, reason) -> events of the newest recorded finding."""


class AttributionStore(Protocol):
    """The landed pairs the registry does not attribute, and where findings are recorded."""

    def unattributed(self) -> list[PairTotal]:
        """Every (account_id, key_id) with landed request events whose key the registry
        does not know or gives to another account (deleted keys count as known)."""
        ...

    def recorded(self) -> Recorded:
        """The findings recorded so far (`key_anomalies`), newest per account, key, reason."""
        ...

    def record(self, findings: list[UnattributedEvents]) -> None:
        """Record the findings; one row per account, key and reason, the largest count
        wins (recording a finding again, from any worker, changes nothing)."""
        ...
