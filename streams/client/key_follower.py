"""`KeyFollower`: the key-events topic folded into memory, account by account.

A background thread reads every partition of the topic from its beginning and applies each
event with the one fold, `schemas.key_ledger.apply` (only an account's next event is
applied). Other threads read the result: `snapshot(account)` (a copy to decide on),
`key_by_hash(secret_hash)` (authentication, verification), `watch(event_ids)` (futures
that say whether an appended event was applied or why not) and `sync()` (wait until every
record written before the call has been applied).

Before the first catch-up (`ready`) every read raises `NotReady` rather than answer from a
partial state. `listeners` are called on the follower thread with each applied event, in
topic order; they must be quick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schemas.codec import decode_key_event
from schemas.errors import InvalidMessage
from schemas.key_ledger import AccountLedger, KeyRecord, Refusal, apply
from schemas.keys import KeyCreated, KeyEventModel

log = logging.getLogger(__name__)

Listener = Callable[[KeyEventModel, AccountLedger], None]


class NotReady(Exception):
    """The follower has not caught up with the key-events topic yet (or has stopped)."""


@dataclass(frozen=True)
class FollowerConfig:
    bootstrap_servers: str
    topic: str
    client_id: str = "keypulse-key-follower"
    fetch_max_wait_ms: int = 200
    poll_timeout_ms: int = 50
    metadata_timeout_s: float = 30.0


@dataclass(frozen=True)
class Progress:
    applied: int
    refused: int
    undecodable: int
    positions: dict[int, int]


def _consumer(config: FollowerConfig) -> Any:
    return KafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        client_id=config.client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        max_poll_records=5_000,
        reconnect_backoff_max_ms=1_000,
    )


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
        self._ends_consumer: Any = None

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
            raise NotReady(
                f"still reading {self.config.topic} from the beginning; retry in a moment"
            )

    def snapshot(self, account_id: str) -> AccountLedger | None:
        """A copy of the account's ledger (None: no such account)."""
        with self._cond:
            self._raise_unless_ready()
            ledger = self._ledgers.get(account_id)
            return None if ledger is None else ledger.copy()

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The current record of the key with this secret hash (None: unknown)."""
        with self._cond:
            self._raise_unless_ready()
            where = self._by_hash.get(secret_hash)
            if where is None:
                return None
            return self._ledgers[where[0]].keys.get(where[1])

    def accounts(self) -> list[str]:
        with self._cond:
            self._raise_unless_ready()
            return sorted(self._ledgers)

    def progress(self) -> Progress:
        with self._cond:
            return Progress(self._applied, self._refused, self._undecodable, dict(self._positions))

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
            tps = self._partitions(consumer)
            return {tp.partition: int(end) for tp, end in consumer.end_offsets(tps).items()}

    def _partitions(self, consumer: Any) -> list[TopicPartition]:
        deadline = time.monotonic() + self.config.metadata_timeout_s
        while True:
            found = consumer.partitions_for_topic(self.config.topic)
            if found:
                return [TopicPartition(self.config.topic, p) for p in sorted(found)]
            if time.monotonic() > deadline:
                raise NotReady(
                    f"topic {self.config.topic} does not exist; run `keypulse topics ensure`"
                )
            time.sleep(0.2)

    # -- the follower thread ---------------------------------------------------------

    def _run(self) -> None:
        consumer = None
        try:
            consumer = _consumer(self.config)
            tps = self._partitions(consumer)
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = {tp.partition: int(e) for tp, e in consumer.end_offsets(tps).items()}
            with self._cond:
                self._start_ends = ends
                self._positions = {tp.partition: consumer.position(tp) for tp in tps}
                self._check_ready()
            while not self._stopping:
                batches = consumer.poll(timeout_ms=self.config.poll_timeout_ms)
                self._apply_batches(consumer, tps, batches)
        except (KafkaError, OSError, NotReady) as exc:
            log.error("key follower stopped: %r", exc)
            with self._cond:
                self._failure = exc
                self._fail_watches(exc)
                self._cond.notify_all()
        finally:
            if consumer is not None:
                consumer.close()

    def _apply_batches(self, consumer: Any, tps: list[TopicPartition], batches: Any) -> None:
        with self._cond:
            for tp, records in batches.items():
                for record in records:
                    self._apply_record(record.value)
                if records:
                    self._positions[tp.partition] = records[-1].offset + 1
            for tp in tps:  # empty polls still advance past control records
                self._positions[tp.partition] = max(
                    self._positions.get(tp.partition, 0), consumer.position(tp)
                )
            self._check_ready()
            self._cond.notify_all()

    def _check_ready(self) -> None:
        ends = self._start_ends
        if not self._ready and ends is not None:
            self._ready = all(self._positions.get(p, 0) >= e for p, e in ends.items())

    def _apply_record(self, value: bytes) -> None:
        try:
            event = decode_key_event(value)
        except InvalidMessage:
            self._undecodable += 1
            return
        ledger, refusal = apply(self._ledgers.get(event.account_id), event)
        if refusal is None and ledger is not None:
            self._ledgers[event.account_id] = ledger
            self._applied += 1
            if isinstance(event, KeyCreated):
                self._by_hash[event.secret_hash] = (event.account_id, event.key_id)
            for listener in self.listeners:
                listener(event, ledger)
        else:
            self._refused += 1
        future = self._watches.pop(event.event_id, None)
        if future is not None:
            future.set_result(refusal)

    def _fail_watches(self, exc: BaseException) -> None:
        for future in self._watches.values():
            future.set_exception(NotReady(f"the key follower stopped: {exc!r}"))
        self._watches.clear()
