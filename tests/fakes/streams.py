"""In-memory implementations of the worker's ports (`streams.worker.ports`), for unit tests.

`tests/contract/test_streams_ports.py` runs the same tests against these and against the
ClickHouse adapters in `projections.writers`, so each fake behaves as its adapter does
through the port. Besides the port methods, each fake keeps what it holds in plain
attributes for assertions, and `failures` makes the next calls raise (one exception
each, in order) to drive the agents' retry and bug paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4

from schemas.key_ledger import KeyRecord
from streams.worker.ports import (
    AccountHistory,
    AccountRecord,
    AnomalyRecord,
    AuditEntry,
    InsertBlock,
    KeyChanges,
    LoggedWrite,
    OffsetRange,
)


@dataclass
class _Failing:
    failures: list[BaseException] = field(default_factory=list)
    calls: int = 0

    def _call(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


@dataclass
class LoggedBatch:
    """One write-ahead record, as `ingest_batches` holds it."""

    topic: str
    token: str
    ranges: list[OffsetRange]
    writer: str = ""
    seq: int = 0


@dataclass
class MemoryIngestStore(_Failing):
    """`IngestStore`: a write-ahead log of ranges, and rows deduplicated by token. Each
    instance is a writer of its own (`reopened` is the same data after a restart)."""

    log: list[LoggedBatch] = field(default_factory=list)
    rows: dict[str, InsertBlock] = field(default_factory=dict)  # by deduplication token
    writer: str = field(default_factory=lambda: uuid4().hex)
    _seq: int | None = None

    def reopened(self) -> MemoryIngestStore:
        """Another writer over the same log and rows (a restarted worker, or a second one)."""
        return MemoryIngestStore(log=self.log, rows=self.rows)

    def watermarks(self, topic: str) -> dict[int, int]:
        self._call()
        marks: dict[int, int] = {}
        for batch in self.log:
            if batch.topic == topic:
                for r in batch.ranges:
                    marks[r.partition] = max(marks.get(r.partition, -1), r.end)
        return marks

    def recovery_log(self, topic: str) -> list[LoggedWrite]:
        self._call()
        mine = [b for b in self.log if b.topic == topic]
        newest: dict[str, LoggedBatch] = {}
        for b in mine:
            if b.writer not in newest or b.seq > newest[b.writer].seq:
                newest[b.writer] = b
        tokens = {b.token for b in newest.values()}
        return [
            LoggedWrite(b.writer, b.seq, b.token, tuple(b.ranges))
            for b in mine
            if b.token in tokens
        ]

    def later_writes(self, tokens: list[str]) -> dict[str, int]:
        self._call()
        out: dict[str, int] = {}
        for token in tokens:
            first = next((i for i, b in enumerate(self.log) if b.token == token), 0)
            out[token] = len(self.log) - first
        return out

    def encode(self, block: InsertBlock) -> None:
        """Nothing to prepare: the fake keeps the block as it is."""

    def write(self, block: InsertBlock) -> None:
        self._call()
        if self._seq is None:
            self._seq = max((b.seq for b in self.log), default=0)
        self._seq += 1
        batch = LoggedBatch(block.topic, block.token, list(block.ranges), self.writer, self._seq)
        self.log.append(batch)
        if block.count:
            self.rows.setdefault(block.token, block)

    def event_ids(self, topic: str) -> list[str]:
        """Every stored event id of `topic` (test reads; not part of the port)."""
        return [
            str(i)
            for token, block in self.rows.items()
            if block.topic == topic
            for i in block.columns["event_id"]
        ]


@dataclass
class MemoryKeyStore(_Failing):
    """`KeyStore`: rows kept as the ClickHouse tables keep them: one audit entry per
    (account, seq), the highest seq of each key and account, one anomaly per
    (account, key, event) with the highest version."""

    audit: dict[tuple[str, int], AuditEntry] = field(default_factory=dict)
    keys: dict[tuple[str, str], KeyRecord] = field(default_factory=dict)
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    anomalies: dict[tuple[str, str, UUID], AnomalyRecord] = field(default_factory=dict)

    def load(self, account_ids: list[str]) -> dict[str, AccountHistory]:
        self._call()
        out: dict[str, AccountHistory] = {}
        for account_id in set(account_ids):
            entries = sorted(
                (seq, entry.event) for (a, seq), entry in self.audit.items() if a == account_id
            )
            refused = frozenset(e for (a, _, e) in self.anomalies if a == account_id)
            out[account_id] = AccountHistory(account_id, [e for _, e in entries], refused)
        return out

    def save(self, changes: KeyChanges) -> None:
        self._call()
        for anomaly in changes.anomalies:
            at = (anomaly.account_id, anomaly.key_id, anomaly.event_id)
            held = self.anomalies.get(at)
            if held is None or anomaly.version >= held.version:
                self.anomalies[at] = anomaly
        for entry in changes.audit:
            self.audit[(entry.event.account_id, entry.event.seq)] = entry
        for key in changes.keys:
            held_key = self.keys.get((key.account_id, key.key_id))
            if held_key is None or key.seq >= held_key.seq:
                self.keys[(key.account_id, key.key_id)] = key
        for account in changes.accounts:
            held_account = self.accounts.get(account.account_id)
            if held_account is None or account.seq >= held_account.seq:
                self.accounts[account.account_id] = account


@dataclass
class MemoryDeadLetters:
    """`DeadLetterSink` that keeps (key, value, headers) of every send."""

    sent: list[tuple[bytes | None, bytes, dict[str, bytes]]] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        self.sent.append((key, value, headers))
