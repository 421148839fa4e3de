"""The background half of `UsageRecorder`: pack, send, spill, replay, account.

One daemon thread owns everything here except the row buffer (recording threads append,
only this thread pops) and the drop counter (shared, locked). kafka-python delivery
callbacks run on the producer's I/O thread and only put `(token, error)` on a queue that
this thread drains, so no other state is shared.

Each loop: collect delivery results; (re)connect in a helper thread so a slow bootstrap
never stalls spilling; resend batches held in memory; pack buffered rows when a batch is
full, the linger expired, or a flush/close asked; replay one spilled segment when Kafka
is up; then sleep until the next linger deadline, a poll tick or a wake-up.

Kafka is "up" when a producer exists, no delivery failed since it connected, and the
oldest unacknowledged batch is younger than `stall_ms`; "connecting" during a first
attempt (rows wait in the buffer); otherwise "down". When down, new batches go to the
spill area if configured; otherwise they wait in memory up to `max_in_flight_events`,
after which the buffer fills and `record()` drops. A failed delivery is spilled (or kept
in memory) and the producer rebuilt once nothing is in flight: an idempotent producer
should not carry on after expired batches.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from schemas.utc import now_ms
from streams.client.batch_packer import PackedBatch, pack_rows, split_packed
from streams.client.kafka_client import build_producer, close_producer
from streams.client.recorder_config import RecorderConfig, RecorderStats
from streams.client.spill import Segment, SpillStore

log = logging.getLogger("streams.client")

_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class DropCounter:
    """Events dropped for good; incremented from any thread (the slow path only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


@dataclass
class _Replay:
    segment: Segment
    outstanding: int
    resolved_events: int = 0


@dataclass(slots=True)
class _InFlight:
    batch: PackedBatch
    sent_at: float
    replay: _Replay | None


Packer = Callable[[list[Any], int], PackedBatch]
"""Rows -> one encoded record stamped at the given epoch ms (`batch_packer.pack_rows`)."""
Tick = Callable[[bool], None]
"""Called on the worker thread at the start of every loop and before shutdown packs the
buffer, with whether a flush or close is waiting (then it must move everything it holds
into the buffer): how a recorder that aggregates feeds its rows in."""


@dataclass
class _Connect:
    thread: threading.Thread
    result: list[Any] = field(default_factory=list)


class RecorderWorker:
    """Owns the producer, the spill store and every counter except drops."""

    def __init__(
        self,
        config: RecorderConfig,
        buffer: deque[Any],
        drops: DropCounter,
        on_connected: Callable[[], None],
        pack: Packer = pack_rows,
        tick: Tick | None = None,
        thread_name: str = "keypulse-usage-recorder",
    ) -> None:
        self._cfg = config
        self._buf = buffer
        self._pack_rows = pack
        self._tick = tick
        self._drops = drops
        self._on_connected = on_connected
        self._spill = (
            SpillStore(config.spill_dir, config.spill_segment_bytes, config.spill_fsync)
            if config.spill_dir is not None
            else None
        )
        self._producer: Any = None
        self._connect: _Connect | None = None
        self._next_connect = 0.0
        self._suspect = False
        self._connect_failed = False
        self._late_drops = 0  # accepted events dropped by close() with spilling off
        self._results: queue.SimpleQueue[tuple[int, BaseException | None]] = queue.SimpleQueue()
        self._tokens = itertools.count()
        self._inflight: dict[int, _InFlight] = {}
        self._retry: deque[PackedBatch] = deque()
        self._replay: _Replay | None = None
        self._first_seen: float | None = None
        self._bytes_per_event = 200.0
        self._max_bytes = config.max_batch_bytes
        # counters (written by the worker thread only)
        self.popped = 0
        self.sent = 0
        self.failed = 0
        self.spilled = 0
        self.batches_sent = 0
        self.inflight_events = 0
        self.replay_inflight_events = 0
        self.retry_events = 0
        # coordination with flush()/close()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._flush_seq = 0
        self._drained_seq = 0
        self._close_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # -- control, called from other threads ----------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until every event accepted before the call is acknowledged (or timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_seq += 1
            seq = self._flush_seq
        self._wake.set()
        with self._cond:
            while self._drained_seq < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def close(self, timeout: float) -> None:
        """Drain for at most `timeout` s, then spill or drop what is left and stop."""
        with self._cond:
            if self._close_deadline is None:
                self._close_deadline = time.monotonic() + timeout
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout + self._cfg.connect_timeout_ms / 1000 + 15.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> RecorderStats:
        buffered = len(self._buf)
        replay = self._replay
        spill_pending = 0
        if self._spill is not None:
            spill_pending = self._spill.pending_events - (replay.resolved_events if replay else 0)
        dropped = self._drops.value
        return RecorderStats(
            recorded=self.popped + buffered + dropped - self._late_drops,
            queued=buffered
            + self.inflight_events
            - self.replay_inflight_events
            + self.retry_events,
            sent=self.sent,
            failed=self.failed,
            dropped=dropped,
            spilled=self.spilled,
            spill_pending=spill_pending,
            batches_sent=self.batches_sent,
            connected=self._state(time.monotonic()) == "up",
        )

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    seq = self._flush_seq
                    closing = self._close_deadline is not None
                self._wake.clear()
                now = time.monotonic()
                self._collect_results()
                self._manage_connection(now)
                if self._tick is not None:
                    self._tick(closing or seq > self._drained_seq)
                state = self._state(now)
                if state == "up":
                    self._resend_retries()
                self._pack(now, urgent=closing or seq > self._drained_seq, state=state)
                if state == "up":
                    self._start_replay()
                drained = self._drained()
                if drained and seq > self._drained_seq:
                    with self._cond:
                        self._drained_seq = seq
                        self._cond.notify_all()
                if closing and self._close_now(drained, state):
                    break
                self._wake.wait(self._sleep_s(now, closing or seq > self._drained_seq, state))
        except Exception:
            log.exception(
                "usage recorder worker failed; buffered events will be spilled or dropped"
            )
        finally:
            self._shutdown()

    def _close_now(self, drained: bool, state: str) -> bool:
        """Whether a closing loop should stop (the rest is spilled or dropped after it)."""
        assert self._close_deadline is not None
        if drained or time.monotonic() >= self._close_deadline:
            return True
        if state == "down" and self._spill is not None:
            return True  # in-flight batches are force-failed and spilled by _shutdown
        return state != "up" and self._in_memory() == 0

    def _sleep_s(self, now: float, urgent: bool, state: str) -> float:
        poll = self._cfg.poll_ms / 1000
        if self._buf and self._can_take(state):
            if urgent or len(self._buf) >= self._target_events():
                return 0.0
            if self._first_seen is not None:
                return max(0.0, min(poll, self._first_seen + self._cfg.linger_ms / 1000 - now))
        return poll

    def _in_memory(self) -> int:
        return len(self._buf) + self.inflight_events + self.retry_events

    def _drained(self) -> bool:
        spill_pending = self._spill.pending_events if self._spill is not None else 0
        return self._in_memory() == 0 and spill_pending == 0 and self._replay is None

    # -- connection ----------------------------------------------------------------------
    def _manage_connection(self, now: float) -> None:
        if self._suspect and self._producer is not None and not self._inflight:
            close_producer(self._producer, 0)
            self._producer = None
            self._suspect = False
            self._next_connect = now + self._cfg.reconnect_backoff_ms / 1000
        attempt = self._connect
        if attempt is not None and not attempt.thread.is_alive():
            self._connect = None
            result = attempt.result[0] if attempt.result else None
            if isinstance(result, BaseException) or result is None:
                if not self._connect_failed:
                    log.warning(
                        "Kafka unreachable at %s: %s", self._cfg.bootstrap_servers, repr(result)
                    )
                self._connect_failed = True
                self._next_connect = now + self._cfg.reconnect_backoff_ms / 1000
            else:
                self._producer = result
                self._connect_failed = False
                self._on_connected()
        if self._producer is None and self._connect is None and now >= self._next_connect:
            out: list[Any] = []
            thread = threading.Thread(
                target=self._connect_once, args=(out,), name="keypulse-connect", daemon=True
            )
            self._connect = _Connect(thread=thread, result=out)
            thread.start()

    def _connect_once(self, out: list[Any]) -> None:
        cfg = self._cfg
        options: dict[str, Any] = {
            "bootstrap_timeout_ms": cfg.connect_timeout_ms,
            "max_request_size": max(4 * cfg.max_batch_bytes, 1_048_576),
        }
        options.update(cfg.producer_options)
        try:
            producer = build_producer(
                cfg.bootstrap_servers, cfg.client_id, cfg.compression, options
            )
        except (KafkaError, OSError, ValueError) as exc:
            out.append(exc)
            return
        try:
            producer.partitions_for(cfg.topic)
        except KafkaError as exc:
            close_producer(producer, 0)
            out.append(exc)
            return
        out.append(producer)

    def _state(self, now: float) -> str:
        """ "up" (send), "connecting" (first attempt since the last success: hold rows),
        or "down" (unreachable, stalled or failing: spill, or wait in memory)."""
        if self._producer is None:
            return "down" if self._connect_failed else "connecting"
        if self._suspect:
            return "down"
        if self._inflight:
            oldest = next(iter(self._inflight.values()))
            if now - oldest.sent_at > self._cfg.stall_ms / 1000:
                return "down"
        return "up"

    # -- packing and sending -------------------------------------------------------------
    def _target_events(self) -> int:
        by_bytes = int(self._max_bytes / self._bytes_per_event)
        return max(1, min(self._cfg.max_batch_events, by_bytes))

    def _can_take(self, state: str) -> bool:
        if state == "connecting":
            return False
        if state == "down" and self._spill is not None:
            return True
        return self.inflight_events + self.retry_events < self._cfg.max_in_flight_events

    def _pack(self, now: float, urgent: bool, state: str) -> None:
        buf = self._buf
        if not buf:
            self._first_seen = None
            return
        if self._first_seen is None:
            self._first_seen = now
        linger_over = now - self._first_seen >= self._cfg.linger_ms / 1000
        while buf and self._can_take(state):
            target = self._target_events()
            if len(buf) < target and not (urgent or linger_over):
                return
            n = min(len(buf), target)
            popleft = buf.popleft
            rows = [popleft() for _ in range(n)]
            self.popped += n
            batch = self._pack_rows(rows, now_ms())
            self._bytes_per_event = 0.5 * self._bytes_per_event + 0.5 * (len(batch.value) / n)
            self._dispatch(batch, state)
            self._first_seen = now if buf else None

    def _dispatch(self, batch: PackedBatch, state: str) -> None:
        if state == "up":
            self._send(batch, None)
        elif self._spill is None and self._producer is not None and not self._suspect:
            self._send(batch, None)  # stalled: kafka-python keeps retrying it
        else:
            self._park(batch)

    def _send(self, batch: PackedBatch, replay: _Replay | None) -> None:
        token = next(self._tokens)
        try:
            future = self._producer.send(self._cfg.topic, value=batch.value, key=batch.key)
        except Exception as exc:  # kafka-python raises KafkaError, ValueError or TypeError
            self._fail(batch, replay, exc)
            return
        self._inflight[token] = _InFlight(batch, time.monotonic(), replay)
        self.inflight_events += batch.count
        if replay is not None:
            self.replay_inflight_events += batch.count
        future.add_callback(self._on_sent, token)
        future.add_errback(self._on_error, token)

    def _on_sent(self, token: int, _metadata: object) -> None:
        self._results.put((token, None))
        self._wake.set()

    def _on_error(self, token: int, exc: BaseException) -> None:
        self._results.put((token, exc))
        self._wake.set()

    def _collect_results(self) -> None:
        while True:
            try:
                token, exc = self._results.get_nowait()
            except queue.Empty:
                return
            entry = self._inflight.pop(token, None)
            if entry is None:
                continue
            count = entry.batch.count
            self.inflight_events -= count
            if entry.replay is not None:
                self.replay_inflight_events -= count
            if exc is None:
                self.sent += count
                self.batches_sent += 1
                if entry.replay is not None:
                    self._resolve(entry.replay, count)
            else:
                self._fail(entry.batch, entry.replay, exc)

    def _fail(self, batch: PackedBatch, replay: _Replay | None, exc: BaseException) -> None:
        self.failed += batch.count
        if isinstance(exc, _TOO_LARGE) and batch.count > 1:
            log.warning("a batch of %d bytes was too large; splitting it", len(batch.value))
            self._max_bytes = max(10_000, len(batch.value) // 2)
            for half in split_packed(batch):
                self._park(half)
        else:
            log.warning(
                "delivery of %d events failed (%s); kept for resending", batch.count, repr(exc)
            )
            self._suspect = True
            self._park(batch)
        if replay is not None:
            self._resolve(replay, batch.count)

    def _park(self, batch: PackedBatch) -> None:
        """Keep a batch Kafka did not take: in the spill area if any, else in memory."""
        if self._spill is not None:
            self._spill.append(batch.key, batch.value, batch.count)
            self.spilled += batch.count
        else:
            self._retry.append(batch)
            self.retry_events += batch.count

    def _resend_retries(self) -> None:
        while self._retry and self.inflight_events < self._cfg.max_in_flight_events:
            batch = self._retry.popleft()
            self.retry_events -= batch.count
            self._send(batch, None)

    # -- spill replay --------------------------------------------------------------------
    def _start_replay(self) -> None:
        spill = self._spill
        if spill is None or self._replay is not None or spill.pending_events == 0:
            return
        if self.inflight_events >= self._cfg.max_in_flight_events // 2:
            return
        spill.rotate()
        segments = spill.closed_segments()
        if not segments:
            return
        segment = spill.load(segments[0])
        if not segment.batches:
            spill.remove(segment)
            return
        replay = _Replay(segment=segment, outstanding=len(segment.batches))
        self._replay = replay
        for batch in segment.batches:
            self._send(PackedBatch(batch.key, batch.value, batch.count), replay)

    def _resolve(self, replay: _Replay, count: int) -> None:
        """One batch of a replayed segment was acknowledged or spilled again."""
        replay.outstanding -= 1
        replay.resolved_events += count
        if replay.outstanding == 0:
            assert self._spill is not None
            self._spill.remove(replay.segment)
            if self._replay is replay:
                self._replay = None

    # -- shutdown ------------------------------------------------------------------------
    def _final_tick(self) -> None:
        """Let the tick move what it still holds into the buffer, to be parked with it."""
        if self._tick is None:
            return
        try:
            self._tick(True)
        except Exception:
            log.exception("recorder tick failed at shutdown; what it held is lost")

    def _shutdown(self) -> None:
        attempt = self._connect
        if attempt is not None:
            attempt.thread.join(self._cfg.connect_timeout_ms / 1000 + 10.0)
            result = attempt.result[0] if attempt.result else None
            if result is not None and not isinstance(result, BaseException):
                if self._producer is None:
                    self._producer = result
                else:
                    close_producer(result, 0)
        self._collect_results()
        self._final_tick()
        while self._buf:
            rows = [self._buf.popleft() for _ in range(min(len(self._buf), self._target_events()))]
            self.popped += len(rows)
            self._park(self._pack_rows(rows, now_ms()))
        if self._producer is not None:
            deadline = self._close_deadline or time.monotonic()
            close_producer(self._producer, max(0.5, min(2.0, deadline - time.monotonic())))
            self._producer = None
            self._collect_results()
        for token, entry in list(self._inflight.items()):  # no result: treat as failed
            del self._inflight[token]
            self.inflight_events -= entry.batch.count
            self._fail(entry.batch, entry.replay, KafkaError("producer closed"))
        if self._retry:
            log.error(
                "usage recorder closed with %d undelivered events; dropped", self.retry_events
            )
            self._late_drops += self.retry_events
            self._drops.add(self.retry_events)
            self._retry.clear()
            self.retry_events = 0
        if self._spill is not None:
            self._spill.close()
        with self._cond:
            self._drained_seq = self._flush_seq if self._drained() else self._drained_seq
            self._cond.notify_all()
