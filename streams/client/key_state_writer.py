"""`KeyStateWriter`: writes a follower's changed accounts to the key-state snapshot topic.

Every `interval_s` (or longer: at most 5% of its time goes to writing, since a cut of an
account with 100,000 keys takes about a second to encode) it takes a `KeyFollower.cut()`
(every account at its first cut, then those that changed), writes their records
(`schemas.key_state.encode_account`) and, once Kafka has acknowledged all of them, one
checkpoint per key-events partition. A write that fails marks the accounts changed
again, so the next cut retries them; a checkpoint is never written before the records it
vouches for. Run one per process that serves the key API (the worker does); more are
safe, see `schemas.key_state`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from schemas.key_state import Checkpoint, encode_account, encode_checkpoint
from streams.client.key_follower import KeyFollower, NotReady

log = logging.getLogger(__name__)

Report = Callable[[KafkaError | None, Message], None]


@dataclass(frozen=True)
class WriterConfig:
    bootstrap_servers: str
    topic: str
    client_id: str = "keypulse-key-state"
    interval_s: float = 5.0
    ack_timeout_s: float = 30.0


class KeyStateWriter:
    def __init__(self, follower: KeyFollower, config: WriterConfig) -> None:
        self.follower = follower
        self.config = config
        self.writer_id = uuid.uuid4().hex[:12]
        self.cuts = 0
        self.records = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = Producer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "client.id": config.client_id,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
                "linger.ms": 20,
                "socket.nagle.disable": True,
                "log_level": 3,  # errors only, through Python logging (`logger`)
                "logger": log,
            }
        )
        self._last_checkpoint: dict[int, int] = {}
        self._cutting = threading.Lock()

    def start(self) -> KeyStateWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="key-state-writer", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.config.ack_timeout_s)
        self._producer.flush(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.follower.wait_ready(1.0)
                break
            except NotReady:
                continue
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.write_cut()
            except Exception:  # a snapshot is an optimisation: never stop the process
                log.exception("key-state snapshot failed; the next cut retries")
            took = time.monotonic() - started
            self._stop.wait(max(self.config.interval_s, 20 * took))

    def write_cut(self) -> bool:
        """Write one cut (everything the first time); whether it was acknowledged."""
        with self._cutting:
            return self._write_cut()

    def _write_cut(self) -> bool:
        try:
            cut = self.follower.cut(everything=self.cuts == 0)
        except NotReady:
            return False
        checkpoints = {p: pos - 1 for p, pos in cut.positions.items() if pos > 0}
        if not cut.accounts and checkpoints == self._last_checkpoint:
            return True
        number = self.cuts + 1
        failures: list[KafkaError] = []

        def report(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        sent = 0
        for ledger, place in cut.accounts:
            for key, value in encode_account(ledger, place, self.writer_id, number):
                self._produce(key, value, report)
                sent += 1
        if not self._acknowledged(failures):
            self.follower.mark_dirty(ledger.account_id for ledger, _ in cut.accounts)
            return False
        for partition, offset in checkpoints.items():
            key, value = encode_checkpoint(Checkpoint(partition, offset, self.writer_id, number))
            self._produce(key, value, report)
        if not self._acknowledged(failures):
            return False
        self.cuts = number
        self.records += sent
        self._last_checkpoint = checkpoints
        return True

    def _produce(self, key: bytes, value: bytes, report: Report) -> None:
        while True:
            try:
                self._producer.produce(self.config.topic, value=value, key=key, on_delivery=report)
                return
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.1)

    def _acknowledged(self, failures: list[KafkaError]) -> bool:
        left = self._producer.flush(self.config.ack_timeout_s)
        if left or failures:
            why = failures[0].str() if failures else f"{left} records unacknowledged"
            log.warning("key-state snapshot not written (%s); the next cut retries", why)
            failures.clear()
            return False
        return True
