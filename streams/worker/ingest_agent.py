"""The ingest agent: request records -> ClickHouse, each event counted exactly once.

The stream is consumed with manual acks into a queue of at most one take. A take ends at
`max_messages` records or `within_s` after its first record (records already waiting
join at once); its records go to the decode thread as they arrive, where the pure
`TakePlanner` cuts them into blocks and the store encodes each block
(`IngestStore.encode`). Each block's dead letters (whole records, or single rows of a
batch) are sent and confirmed by the broker before that block is written, and each
block is written on the one writer thread while the next one is decoded. Writes stay in
order and one at a time (the write-ahead row, then the insert); a take's events are
acknowledged only after its last block landed, so offsets are committed only after the
write. On start and after a partition assignment every recorded insert of the assigned
partitions that may be half-landed (`streams.worker.recovery_plan`: several workers may
share the log) is re-applied whole with its token (a no-op where it had landed), then a
marker row notes that they landed; records at or below the watermarks are skipped.

Verification outcome rows from the same records (`PlannedBlock.outcomes`) are inserted
right after the block's request rows, with the same deduplication token, by a store that
also implements `OutcomeStore` (the ClickHouse one does): re-applying a recorded insert
re-inserts both, so outcomes are written exactly once as requests are. With a store
that cannot hold outcomes they are counted (`IngestStats.outcomes_unstored`) and logged.

Transient failures (ClickHouse per `store_transient`, Kafka per `kafka_transient`) are
retried with backoff; any other error ends the agent through `on_bug` (by default
`stop_on_bug`: the process exits before any offset past the failed batch is committed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import orjson

from schemas.request_columns import Columns
from schemas.runtime.dead_letters import DeadLetterSink, dead_letter_headers
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from streams.worker.failures import kafka_transient, stop_on_bug
from streams.worker.ingest_plan import (
    IngestLimits,
    PlannedBlock,
    Rejected,
    SourceRecord,
    TakePlanner,
    advance_watermarks,
    plan_ingest,
)
from streams.worker.kafka_ranges import RangeGone, read_ranges
from streams.worker.ports import IngestStore, InsertBlock, OffsetRange
from streams.worker.record_feed import RecordFeed
from streams.worker.recovery_plan import TRUSTED_LATER_WRITES, plan_recovery, unfinished

log = logging.getLogger(__name__)

BATCH_INDEX_HEADER = "keypulse-batch-index"
"""Dead letters of single rows of a batch carry the row's index in the batch."""


@dataclass
class IngestStats:
    events: int = 0
    blocks: int = 0
    dead_letters: int = 0
    """Dead-letter records sent: whole records and single rows of batches."""
    dead_letter_rows: int = 0
    """Of `dead_letters`, those of single rows of a batch."""
    skipped_records: int = 0
    recovered_blocks: int = 0
    unrecoverable_blocks: int = 0
    """Unfinished recorded inserts that could not be re-applied (too old, or gone)."""
    last_insert_s: float = 0.0
    last_block_events: int = 0
    max_occurred_at_ms: int = 0
    outcomes: int = 0
    """Verification outcome rows written."""
    outcomes_unstored: int = 0
    """Outcome rows the store could not hold (it is no `OutcomeStore`)."""
    insert_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


@runtime_checkable
class OutcomeStore(Protocol):
    """An `IngestStore` that also holds verification outcome rows."""

    def write_outcomes(self, token: str, columns: Columns, count: int) -> None:
        """Insert `count` outcome rows (`PlannedBlock.outcomes`) with the deduplication
        token of the block they came with; the same token again is a no-op."""
        ...


BlockListener = Callable[[InsertBlock], None]
BugHandler = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class _Arrival:
    at: float
    """`time.monotonic()` when the event was consumed."""
    event: Any


async def _pump(source: Any, arrivals: asyncio.Queue[_Arrival]) -> None:
    """Consume the (manually acknowledged) stream into `arrivals` as events come."""
    async for event in source.events():
        await arrivals.put(_Arrival(time.monotonic(), event))


@dataclass
class _Written:
    """A take whose blocks all went to the writer; `landed` resolves when the last did."""

    events: list[Any]
    landed: asyncio.Future[None] | None
    acked: bool = False

    async def ack(self, stream: Any) -> None:
        """Acknowledge the take's events once it landed (raising a write failure)."""
        if self.acked:
            return
        if self.landed is not None:
            await self.landed
        for event in self.events:
            await stream.ack(event)
        self.acked = True


async def _first_arrival(
    arrivals: asyncio.Queue[_Arrival],
    pump: asyncio.Future[None],
    stream: Any,
    written: _Written | None,
) -> _Arrival | None:
    """The next arrival, acknowledging `written` if it lands first; None once the stream
    ended (a failure of the pump or of the write is raised)."""
    if not arrivals.empty():
        return arrivals.get_nowait()
    getter = asyncio.ensure_future(arrivals.get())
    waiting: set[asyncio.Future[Any]] = {getter, pump}
    unacked = written if written is not None and not written.acked else None
    if unacked is not None and unacked.landed is not None:
        waiting.add(unacked.landed)
    try:
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                return getter.result()
            if pump in done:
                pump.result()
                return None
            if unacked is not None and unacked.landed in done:
                waiting.discard(unacked.landed)
                await unacked.ack(stream)
    finally:
        getter.cancel()


def faust_record(message: Any) -> SourceRecord:
    """A consumed faust message as a `SourceRecord` (faust keeps the timestamp in seconds)."""
    ts = message.timestamp
    return SourceRecord(
        message.partition,
        message.offset,
        message.key,
        message.value if message.value is not None else b"",
        round(ts * 1000) if ts is not None and ts >= 0 else None,
    )


def dead_letter(item: Rejected, topic: str) -> tuple[bytes | None, bytes, dict[str, bytes]]:
    """Key, value and headers of the dead-letter record for `item`: a whole record as it
    was, or a batch row as a single `request.completed` object with its batch index."""
    rec = item.record
    headers = dead_letter_headers(item.error, topic, rec.partition, rec.offset)
    if item.row is None:
        return rec.key, rec.value, headers
    headers[BATCH_INDEX_HEADER] = str(item.row.index).encode()
    return rec.key, orjson.dumps(item.row.row), headers


class IngestAgent:
    """Owns the watermarks and the write path of one worker's request partitions."""

    def __init__(
        self,
        topic: str,
        bootstrap_servers: str,
        store: IngestStore,
        dead_letters: DeadLetterSink,
        limits: IngestLimits,
        retry_max_s: float = 10.0,
        store_transient: IsTransient = io_failure,
        on_bug: BugHandler = stop_on_bug,
        trusted_writes: int = TRUSTED_LATER_WRITES,
    ) -> None:
        self._topic = topic
        self._bootstrap = bootstrap_servers
        self._store = store
        self._dlq = dead_letters
        self._limits = limits
        self._retry_max_s = retry_max_s
        self._store_transient = store_transient
        self._on_bug = on_bug
        self._trusted_writes = trusted_writes
        self._assigned: set[int] | None = None
        """Partitions assigned since the last recovery (None: all of them)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-ingest")
        self._decode_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._watermarks: dict[int, int] = {}
        self._writing: asyncio.Future[None] | None = None
        """The newest write handed to the writer thread (writes run one at a time)."""
        self._stale = True
        self._unmarked = False
        """Blocks landed since this agent's last marker row (the log cannot tell yet)."""
        self._outcomes = store if isinstance(store, OutcomeStore) else None
        self.stats = IngestStats()
        self.listeners: list[BlockListener] = []

    def mark_stale(self, partitions: Iterable[int] | None = None) -> None:
        """Partitions were (re)assigned: recover them before the next batch (None: every
        partition of the log; assignments before that recovery add up)."""
        if partitions is None or (self._stale and self._assigned is None):
            self._assigned = None
        else:
            self._assigned = (self._assigned or set()) | set(partitions)
        self._stale = True

    @property
    def watermarks(self) -> dict[int, int]:
        """A copy of the highest offset ClickHouse holds per request partition."""
        return dict(self._watermarks)

    async def _blocking(
        self, fn: Callable[..., Any], *args: Any, transient: IsTransient | None = None
    ) -> Any:
        """Run a store call (or, with `transient`, another call) off the loop, retrying
        transient failures with backoff."""
        return await off_loop_until_done(
            self._executor,
            fn,
            *args,
            logger=log,
            max_delay_s=self._retry_max_s,
            transient=transient or self._store_transient,
        )

    async def recover(self) -> None:
        """Re-apply every recorded insert of the assigned partitions that may be
        half-landed (`plan_recovery`), note that they landed, load the watermarks. Runs
        with no write in flight, so a marker row first says this agent's own blocks
        landed (they are nobody's suspects then)."""
        assigned = None if self._assigned is None else frozenset(self._assigned)
        self._assigned, self._stale = set(), False  # an assignment from now on: again
        await self._mark_landed()
        rows = await self._blocking(self._store.recovery_log, self._topic)
        suspects = unfinished(rows)
        later = await self._blocking(self._store.later_writes, suspects) if suspects else {}
        marks = await self._blocking(self._store.watermarks, self._topic)
        plan = plan_recovery(rows, later, marks, assigned, self._trusted_writes)
        for old in plan.too_old:
            self.stats.unrecoverable_blocks += 1
            log.error(
                "ingest: the recorded insert %s may be half-landed, but %d inserts were "
                "written since (more than %d): its token may no longer deduplicate, so it "
                "is not re-applied; if part of it had not landed, those events are missing "
                "(`keypulse replay` rebuilds the tables exactly)",
                old.token,
                later.get(old.token, -1),
                self._trusted_writes,
            )
        for row in plan.reapply:
            self._unmarked = await self._reapply(list(row.ranges)) or self._unmarked
        await self._mark_landed()
        self._watermarks = plan.watermarks
        log.info("ingest: watermarks %s", self._watermarks)

    async def _mark_landed(self) -> None:
        """With no write in flight: a marker row (no ranges) after this agent's blocks
        says that they landed, if any did since its last one."""
        if self._unmarked:
            await self._blocking(self._store.write, InsertBlock(self._topic, [], {}, 0, 0))
            self._unmarked = False

    async def _reapply(self, ranges: list[OffsetRange]) -> bool:
        """Re-insert a recorded block under its token; False when Kafka lost it."""
        try:
            records = await self._blocking(
                read_ranges, self._bootstrap, self._topic, ranges, transient=kafka_transient
            )
        except RangeGone as exc:
            self.stats.unrecoverable_blocks += 1
            log.error(
                "ingest: a recorded insert that may be half-landed cannot be re-applied "
                "(%s); if it had not landed, its events are missing from ClickHouse",
                exc,
            )
            return False
        one_block = replace(self._limits, max_events=1 << 62)
        plan = plan_ingest(self._topic, records, {}, one_block)
        for planned in plan.planned:
            planned.block.ranges = ranges  # same ranges, same token as the original insert
            await self._blocking(self._write, planned)
            self.stats.recovered_blocks += 1
        return True

    def _write(self, planned: PlannedBlock) -> None:
        """The block (write-ahead row, request rows), then its outcome rows, same token."""
        block = planned.block
        self._store.write(block)
        if not planned.outcome_count:
            return
        if self._outcomes is None:
            if not self.stats.outcomes_unstored:
                log.warning("ingest: this store holds no verification outcomes; not stored")
            self.stats.outcomes_unstored += planned.outcome_count
            return
        self._outcomes.write_outcomes(block.token, planned.outcomes, planned.outcome_count)

    async def run(self, stream: Any) -> None:
        """The faust agent body (concurrency 1); a non-transient error goes to `on_bug`.

        The stream is consumed with manual acks (`stream.noack()`) into a queue of at
        most one take. A take's events are acknowledged once all its blocks landed; the
        next take is collected and decoded meanwhile.
        """
        try:
            await self.recover()
            arrivals: asyncio.Queue[_Arrival] = asyncio.Queue(maxsize=self._take_max)
            pump = asyncio.ensure_future(_pump(stream.noack(), arrivals))
            try:
                await self._takes(stream, arrivals, pump)
            finally:
                pump.cancel()
        except Exception as exc:
            self._on_bug("ingest agent", exc)
            raise

    async def _takes(
        self, stream: Any, arrivals: asyncio.Queue[_Arrival], pump: asyncio.Future[None]
    ) -> None:
        written: _Written | None = None
        while (first := await _first_arrival(arrivals, pump, stream, written)) is not None:
            events, landed = await self._take(first, arrivals)
            if written is not None:
                await written.ack(stream)  # landed: this take's first write waited for it
            written = _Written(events, landed)
        if written is not None:
            await written.ack(stream)

    _take_max = 256
    _take_within = 0.5

    def configure_take(self, max_messages: int, within_s: float) -> None:
        """A take ends at `max_messages` records, or `within_s` after its first record
        arrived (records already waiting join it without waiting)."""
        self._take_max = max_messages
        self._take_within = within_s

    async def _take(
        self, first: _Arrival, arrivals: asyncio.Queue[_Arrival]
    ) -> tuple[list[Any], asyncio.Future[None] | None]:
        """Collect one take from `first` on while its blocks are planned and written.
        Returns its events once every block was handed to the writer, with the write
        that lands last (None: nothing was ever written)."""
        feed = RecordFeed([faust_record(first.event.message)])
        events = [first.event]
        handing = asyncio.ensure_future(self._process_feed(feed))
        try:
            await self._collect(first.at + self._take_within, arrivals, events, feed, handing)
        finally:
            feed.close()
        return events, await handing

    async def _collect(
        self,
        deadline: float,
        arrivals: asyncio.Queue[_Arrival],
        events: list[Any],
        feed: RecordFeed,
        handing: asyncio.Future[Any],
    ) -> None:
        while len(events) < self._take_max and not handing.done():
            if arrivals.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    arrival = await asyncio.wait_for(arrivals.get(), remaining)
                except TimeoutError:
                    return
            else:
                arrival = arrivals.get_nowait()
            events.append(arrival.event)
            feed.put(faust_record(arrival.event.message))

    async def process(self, records: list[SourceRecord]) -> None:
        """Plan, dead-letter and write `records` as one take; returns once it landed."""
        feed = RecordFeed(records)
        feed.close()
        landed = await self._process_feed(feed)
        if landed is not None:
            await landed

    async def _settle(self) -> None:
        """Wait for the write in flight (raising its failure)."""
        if self._writing is not None:
            await self._writing

    async def _process_feed(self, feed: RecordFeed) -> asyncio.Future[None] | None:
        """Plan the feed's records block by block on the decode thread, dead-letter each
        block's rejects, then write it (after the write before it) while the next block
        is decoded. Returns once the feed closed and its last block went to the writer,
        with the write that lands last."""
        if self._stale:
            await self._settle()
            await self.recover()
        planner = TakePlanner(self._topic, self._limits, dict(self._watermarks))
        steps = planner.blocks(feed)
        try:
            while (planned := await self._next_block(steps)) is not None:
                await self._dead_letter(planned.rejected)
                await self._settle()
                self._writing = asyncio.ensure_future(self._land(planned))
        finally:
            self.stats.skipped_records += planner.skipped
        return self._writing

    async def _next_block(self, steps: Iterator[PlannedBlock]) -> PlannedBlock | None:
        """Decode and encode the next block on the decode thread (CPU work off the event
        loop and off the writer thread, which then only waits for the store)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._decode_executor, self._decode_next, steps
        )

    def _decode_next(self, steps: Iterator[PlannedBlock]) -> PlannedBlock | None:
        planned = next(steps, None)
        if planned is not None:
            self._store.encode(planned.block)
        return planned

    async def _land(self, planned: PlannedBlock) -> None:
        """Write the block on the writer thread, then count it and tell the listeners."""
        block = planned.block
        began = time.perf_counter()
        await self._blocking(self._write, planned)
        elapsed = time.perf_counter() - began
        advance_watermarks(self._watermarks, block)
        self._unmarked = True
        self.stats.events += block.count
        if self._outcomes is not None:
            self.stats.outcomes += planned.outcome_count
        self.stats.blocks += 1
        self.stats.last_insert_s = elapsed
        self.stats.insert_seconds.append(elapsed)
        self.stats.last_block_events = block.count
        self.stats.max_occurred_at_ms = max(self.stats.max_occurred_at_ms, block.max_occurred_at_ms)
        for listener in self.listeners:
            listener(block)

    async def _dead_letter(self, rejected: list[Rejected]) -> None:
        for item in rejected:
            await self._dlq.send(*dead_letter(item, self._topic))
            self.stats.dead_letters += 1
            if item.row is not None:
                self.stats.dead_letter_rows += 1

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._decode_executor.shutdown(wait=True)
