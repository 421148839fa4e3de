"""In-memory implementations of the worker's ports (`streams.worker.ports`), for unit tests.

`tests/contract/test_streams_ports.py` runs the same tests against these and against the
ClickHouse adapters in `projections.writers`, so each fake behaves as its adapter does
through the port. Besides the port methods, each fake keeps what it holds in plain
attributes for assertions, and `failures` makes the next calls raise (one exception
each, in order) to drive the agents' retry and bug paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.worker.ports import AnomalyRecord, InsertBlock, KeyState, OffsetRange


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


@dataclass
class MemoryIngestStore(_Failing):
    """`IngestStore`: a write-ahead log of ranges, and rows deduplicated by token."""

    log: list[LoggedBatch] = field(default_factory=list)
    rows: dict[str, InsertBlock] = field(default_factory=dict)  # by deduplication token

    def watermarks(self, topic: str) -> dict[int, int]:
        self._call()
        marks: dict[int, int] = {}
        for batch in self.log:
            if batch.topic == topic:
                for r in batch.ranges:
                    marks[r.partition] = max(marks.get(r.partition, -1), r.end)
        return marks

    def last_ranges(self, topic: str) -> list[OffsetRange]:
        self._call()
        mine = [b for b in self.log if b.topic == topic]
        return list(mine[-1].ranges) if mine else []

    def encode(self, block: InsertBlock) -> None:
        """Nothing to prepare: the fake keeps the block as it is."""

    def write(self, block: InsertBlock) -> None:
        self._call()
        self.log.append(LoggedBatch(block.topic, block.token, list(block.ranges)))
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
    """`KeyStore`: the highest version of each key wins, as in a ReplacingMergeTree."""

    keys: dict[str, KeyState] = field(default_factory=dict)
    anomalies: list[AnomalyRecord] = field(default_factory=list)

    def load(self, key_ids: list[str]) -> dict[str, KeyState]:
        self._call()
        return {k: self.keys[k] for k in set(key_ids) if k in self.keys}

    def save(self, states: list[KeyState], anomalies: list[AnomalyRecord]) -> None:
        self._call()
        for s in states:
            held = self.keys.get(s.key_id)
            if held is None or s.version >= held.version:
                self.keys[s.key_id] = s
        self.anomalies.extend(anomalies)


@dataclass
class MemoryDeadLetters:
    """`DeadLetterSink` that keeps (key, value, headers) of every send."""

    sent: list[tuple[bytes | None, bytes, dict[str, bytes]]] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        self.sent.append((key, value, headers))
