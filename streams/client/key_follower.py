"""`KeyFollower`: the key-events topic folded into memory, account by account.

A background thread reads every partition of the topic from its beginning and applies each
event with the one fold, `schemas.key_ledger.apply` (only an account's next event is
applied). Other threads read the result: `snapshot(account)` (a copy to decide on),
`key_by_hash(secret_hash)` (authentication, verification), `watch(event_ids)` (futures
that say whether an appended event was applied or why not) and `sync()` (wait until every
record written before the call has been applied).

Before the first catch-up (`ready`) every read raises `NotReady` rather than answer from a
partial state; while Kafka is unreachable the follower keeps trying (the `NotReady`
message says why it is not ready) and becomes ready once it has caught up. `listeners`
are called on the follower thread with each applied event, in topic order; they must be
quick.

With `state_topic` it starts from the key-state snapshot (`schemas.key_state`) and reads
the key-events topic only from where the snapshot ends; `cut()` gives a snapshot writer
(`streams.client.key_state_writer`) what changed since its last cut.

It reads with librdkafka (`confluent-kafka`): fetching runs in C threads without the GIL,
and the follower thread only decodes and folds (see docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from schemas.codec import decode_key_event
from schemas.errors import InvalidMessage
from schemas.key_ledger import AccountLedger, KeyRecord, Refusal, apply
from schemas.key_state import AccountPlace, LoadedState, StateAssembler, start_offsets
from schemas.keys import KeyCreated, KeyEventModel, KeyRolled

log = logging.getLogger(__name__)

Listener = Callable[[KeyEventModel, AccountLedger], None]


class NotReady(Exception):
    """The follower has not caught up with the key-events topic yet (or has stopped)."""


@dataclass(frozen=True)
class FollowerConfig:
    bootstrap_servers: str
    topic: str
    client_id: str = "keypulse-key-follower"
    fetch_max_wait_ms: int = 100
    poll_timeout_ms: int = 50
    metadata_timeout_s: float = 2.0
    """How long one metadata request may take before the follower tries again."""
    state_topic: str | None = None
    """The key-state snapshot topic to start from (None: replay key-events from the start)."""


@dataclass(frozen=True)
class Progress:
    applied: int
    refused: int
    undecodable: int
    positions: dict[int, int]
    from_snapshot: int = 0
    """Accounts loaded from the key-state snapshot at start."""


@dataclass(frozen=True)
class Cut:
    """What changed since the previous cut: copies of those accounts' ledgers with where
    their events are, and the positions (next offsets) up to which they are exact."""

    accounts: list[tuple[AccountLedger, AccountPlace]]
    positions: dict[int, int]


def _consumer(config: FollowerConfig, **extra: Any) -> Consumer:
    """A consumer that only reads assigned partitions (no group membership, no commits)."""
    return Consumer(
        extra
        | {
            "bootstrap.servers": config.bootstrap_servers,
            "client.id": config.client_id,
            "group.id": f"{config.client_id}-unused",  # required; never joined or committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": config.fetch_max_wait_ms,
            "fetch.queue.backoff.ms": 10,
            "reconnect.backoff.max.ms": 1_000,
            "socket.connection.setup.timeout.ms": 2_000,
            "socket.nagle.disable": True,
            "log_level": 3,  # errors only, through Python logging (`logger`)
            "logger": log,
        }
    )


class _Unreachable(Exception):
    """Kafka did not answer a metadata request (the follower retries)."""


class KeyFollower:
    def __init__(self, config: FollowerConfig) -> None:
        self.config = config
        self.listeners: list[Listener] = []
        self._cond = threading.Condition()
        self._ledgers: dict[str, AccountLedger] = {}
        self._by_hash: dict[str, tuple[str, str]] = {}
        self._watches: dict[UUID, Future[Refusal | None]] = {}
        self._positions: dict[int, int] = {}
        self._start_ends: dict[int, int] | None = None
        self._ready = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._applied = self._refused = self._undecodable = 0
        self._thread: threading.Thread | None = None
        self._ends_lock = threading.Lock()
        self._ends_consumer: Consumer | None = None
        self._waiting_for: str | None = None
        self._places: dict[str, AccountPlace] = {}
        self._dirty: set[str] = set()
        self._loaded = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> KeyFollower:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="key-follower", daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until the first catch-up is done; `NotReady` after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._failure is not None, timeout)
            self._raise_unless_ready()

    @property
    def ready(self) -> bool:
        return self._ready and self._failure is None and not self._stopping

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        with self._ends_lock:
            if self._ends_consumer is not None:
                self._ends_consumer.close()
                self._ends_consumer = None

    # -- reads -----------------------------------------------------------------------

    def _raise_unless_ready(self) -> None:
        if self._failure is not None:
            raise NotReady(f"the key follower stopped: {self._failure!r}") from self._failure
        if self._stopping:
            raise NotReady("the key follower is closed")
        if not self._ready:
            why = self._waiting_for or f"still reading {self.config.topic} from the beginning"
            raise NotReady(f"{why}; retry in a moment")

    def snapshot(self, account_id: str) -> AccountLedger | None:
        """A copy of the account's ledger (None: no such account)."""
        with self._cond:
            self._raise_unless_ready()
            ledger = self._ledgers.get(account_id)
            return None if ledger is None else ledger.copy()

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The current record of the key with this secret hash (None: unknown).

        Lock-free (the verifier's hot path): two dict reads, each atomic in CPython, and a
        key's record is replaced whole, never changed in place."""
        if not self._ready or self._failure is not None or self._stopping:
            with self._cond:
                self._raise_unless_ready()
        where = self._by_hash.get(secret_hash)
        if where is None:
            return None
        ledger = self._ledgers.get(where[0])
        return None if ledger is None else ledger.keys.get(where[1])

    def accounts(self) -> list[str]:
        with self._cond:
            self._raise_unless_ready()
            return sorted(self._ledgers)

    def progress(self) -> Progress:
        with self._cond:
            return Progress(
                self._applied,
                self._refused,
                self._undecodable,
                dict(self._positions),
                self._loaded,
            )

    def cut(self, everything: bool = False) -> Cut:
        """Copies of the accounts changed since the last cut (every account when
        `everything`), for a snapshot writer; `mark_dirty` them again if the write fails."""
        with self._cond:
            self._raise_unless_ready()
            names = list(self._ledgers) if everything else list(self._dirty)
            self._dirty.clear()
            accounts = [(self._ledgers[a].copy(), self._places[a]) for a in names]
            return Cut(accounts, dict(self._positions))

    def mark_dirty(self, account_ids: Iterable[str]) -> None:
        with self._cond:
            self._dirty.update(a for a in account_ids if a in self._ledgers)

    def watch(self, event_ids: Iterable[UUID]) -> list[Future[Refusal | None]]:
        """Futures resolved when the follower reads each event: None if it was applied,
        else the refusal. Register before appending the events."""
        futures: list[Future[Refusal | None]] = []
        with self._cond:
            for event_id in event_ids:
                future: Future[Refusal | None] = Future()
                self._watches[event_id] = future
                futures.append(future)
        return futures

    def unwatch(self, event_ids: Iterable[UUID]) -> None:
        with self._cond:
            for event_id in event_ids:
                self._watches.pop(event_id, None)

    def sync(self, timeout: float, partitions: Iterable[int] | None = None) -> None:
        """Return once everything written to `partitions` (default all) before this call
        has been applied; `TimeoutError` after `timeout` seconds."""
        ends = self._end_offsets()
        wanted = {p: e for p, e in ends.items() if partitions is None or p in set(partitions)}
        with self._cond:
            done = self._cond.wait_for(
                lambda: (
                    self._failure is not None
                    or all(self._positions.get(p, 0) >= e for p, e in wanted.items())
                ),
                timeout,
            )
            self._raise_unless_ready()
        if not done:
            raise TimeoutError(f"{self.config.topic} not read up to {wanted} within {timeout} s")

    def _end_offsets(self) -> dict[int, int]:
        with self._ends_lock:
            if self._ends_consumer is None:
                self._ends_consumer = _consumer(self.config)
            consumer = self._ends_consumer
            try:
                return self._high_watermarks(consumer, self._partitions(consumer))
            except _Unreachable as exc:
                raise TimeoutError(str(exc)) from exc

    def _partitions(self, consumer: Consumer, topic_name: str | None = None) -> list[int]:
        name = topic_name or self.config.topic
        timeout = self.config.metadata_timeout_s
        try:
            metadata = consumer.list_topics(name, timeout=timeout)
        except KafkaException as exc:
            raise _Unreachable(
                f"Kafka unreachable at {self.config.bootstrap_servers} ({exc.args[0].str()})"
            ) from exc
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            raise NotReady(f"topic {name} does not exist; run `keypulse topics ensure`")
        return sorted(topic.partitions)

    def _high_watermarks(
        self, consumer: Consumer, partitions: list[int], topic_name: str | None = None
    ) -> dict[int, int]:
        ends: dict[int, int] = {}
        for partition in partitions:
            tp = TopicPartition(topic_name or self.config.topic, partition)
            try:
                _low, high = consumer.get_watermark_offsets(
                    tp, timeout=self.config.metadata_timeout_s, cached=False
                )
            except KafkaException as exc:
                raise _Unreachable(
                    f"Kafka unreachable at {self.config.bootstrap_servers} ({exc.args[0].str()})"
                ) from exc
            ends[partition] = int(high)
        return ends

    # -- the follower thread ---------------------------------------------------------

    def _connect(self, consumer: Consumer) -> tuple[list[int], dict[int, int]] | None:
        """The partitions and their end offsets at start; None once stopping."""
        with self._cond:
            self._waiting_for = f"connecting to Kafka at {self.config.bootstrap_servers}"
        while not self._stopping:
            try:
                partitions = self._partitions(consumer)
                return partitions, self._high_watermarks(consumer, partitions)
            except (_Unreachable, NotReady) as exc:
                with self._cond:
                    if self._waiting_for != str(exc):
                        log.warning("key follower waiting: %s", exc)
                    self._waiting_for = str(exc)
                    self._cond.wait(0.5)
        return None

    def _run(self) -> None:
        consumer = None
        try:
            consumer = _consumer(self.config)
            started = self._connect(consumer)
            if started is None:
                return
            partitions, ends = started
            topic = self.config.topic
            begin = self._load_state(partitions)
            consumer.assign(
                [TopicPartition(topic, p, begin.get(p, 0) or OFFSET_BEGINNING) for p in partitions]
            )
            with self._cond:
                self._waiting_for = None
                self._start_ends = ends
                self._positions = {p: begin.get(p, 0) for p in partitions}
                self._check_ready()
                self._cond.notify_all()
            timeout = self.config.poll_timeout_ms / 1000
            while not self._stopping:
                first = consumer.poll(timeout)
                batch = [] if first is None else [first, *consumer.consume(5_000, 0)]
                self._apply_batch(consumer, partitions, batch)
        except (KafkaException, OSError, NotReady) as exc:
            log.error("key follower stopped: %r", exc)
            with self._cond:
                self._failure = exc
                self._fail_watches(exc)
                self._cond.notify_all()
        finally:
            if consumer is not None:
                consumer.close()

    def _apply_batch(self, consumer: Consumer, partitions: list[int], batch: list[Message]) -> None:
        with self._cond:
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    continue  # transient: librdkafka retries by itself
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                self._apply_record(message.value() or b"", partition, offset)
                self._positions[partition] = offset + 1
            if not batch:  # empty polls still advance past control records
                topic = self.config.topic
                for tp in consumer.position([TopicPartition(topic, p) for p in partitions]):
                    if tp.offset >= 0:
                        current = self._positions.get(tp.partition, 0)
                        self._positions[tp.partition] = max(current, tp.offset)
            self._check_ready()
            self._cond.notify_all()

    def _check_ready(self) -> None:
        ends = self._start_ends
        if not self._ready and ends is not None:
            self._ready = all(self._positions.get(p, 0) >= e for p, e in ends.items())

    def _apply_record(self, value: bytes, partition: int, offset: int) -> None:
        try:
            event = decode_key_event(value)
        except InvalidMessage:
            self._undecodable += 1
            return
        account = event.account_id
        place = self._places.get(account)
        if place is not None and offset <= place.source_offset:
            return  # the snapshot this follower started from holds it already
        ledger, refusal = apply(self._ledgers.get(account), event)
        if refusal is None and ledger is not None:
            self._ledgers[account] = ledger
            first = offset if place is None else place.first_offset
            self._places[account] = AccountPlace(partition, first, offset)
            self._dirty.add(account)
            self._applied += 1
            if isinstance(event, KeyCreated):
                self._by_hash[event.secret_hash] = (account, event.key_id)
            elif isinstance(event, KeyRolled):  # the successor's secret
                self._by_hash[event.secret_hash] = (account, event.new_key_id)
            for listener in self.listeners:
                listener(event, ledger)
        else:
            self._refused += 1
        future = self._watches.pop(event.event_id, None)
        if future is not None:
            future.set_result(refusal)

    # -- the snapshot at start ---------------------------------------------------------

    def _load_state(self, partitions: list[int]) -> dict[int, int]:
        """Load the key-state snapshot (if configured and there); where to start reading."""
        topic = self.config.state_topic
        if topic is None:
            return {}
        consumer = _consumer(self.config, **{"max.partition.fetch.bytes": 16 * 1024 * 1024})
        try:
            state = self._read_state(consumer, topic)
        except (_Unreachable, NotReady) as exc:
            log.warning(
                "key follower: no key-state snapshot (%s); replaying %s", exc, self.config.topic
            )
            return {}
        finally:
            consumer.close()
        with self._cond:
            for account_id, loaded in state.accounts.items():
                self._ledgers[account_id] = loaded.ledger
                self._places[account_id] = loaded.place
                for key in loaded.ledger.keys.values():
                    self._by_hash[key.secret_hash] = (account_id, key.key_id)
            self._loaded = len(state.accounts)
        return start_offsets(state, partitions)

    def _read_state(self, consumer: Consumer, topic: str) -> LoadedState:
        parts = self._partitions(consumer, topic)
        ends = self._high_watermarks(consumer, parts, topic)
        assembler = StateAssembler()
        wanted = {p: e for p, e in ends.items() if e > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        while wanted and not self._stopping:
            first = consumer.poll(0.2)
            batch = [] if first is None else [first, *consumer.consume(1_000, 0)]
            for message in batch:
                if message.error() is not None:
                    continue
                assembler.add(message.key(), message.value())
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                if offset + 1 >= wanted.get(partition, 0):
                    wanted.pop(partition, None)
            if not batch:  # the end may be a gap (compaction) rather than a record
                tps = [TopicPartition(topic, p) for p in wanted]
                for tp in consumer.position(tps):
                    if tp.offset >= wanted[tp.partition]:
                        wanted.pop(tp.partition, None)
        return assembler.result()

    def _fail_watches(self, exc: BaseException) -> None:
        for future in self._watches.values():
            future.set_exception(NotReady(f"the key follower stopped: {exc!r}"))
        self._watches.clear()
