"""`UsageRecorder`: what an API thread calls once per request; never blocks on Kafka.

`record()` validates its arguments (raising `ValueError` naming the field before
anything is queued), appends one tuple to a bounded `deque` and returns. There is no lock
on that path: `deque.append`, `len()` and set membership are atomic under the GIL, only
the worker thread pops, and the rare drop path takes a lock to count. Everything slow -
packing, encoding, sending, spilling - happens on the worker (`streams.client.recorder_worker`).

Lifecycle: the constructor starts the worker (and opens the spill directory, raising
`SpillError` if another process holds it) and registers an `atexit` hook that closes the
recorder with `config.close_timeout_s`. `flush(timeout)` waits for acknowledgement;
`close(timeout)` drains, then spills (or drops and counts) what Kafka did not take.
Events recorded after `close()` are dropped and counted.

`BufferedRecorder` is that lifecycle over any row buffer and packer; `UsageRecorder` and
`streams.client.outcome_recorder.OutcomeRecorder` are the two recorders built on it.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Self

from schemas.request_bounds import (
    HTTP_METHODS,
    MAX_BYTES_OUT,
    MAX_LATENCY_MS,
    MAX_ROUTE_LENGTH,
    MAX_STATUS,
    MIN_BYTES_OUT,
    MIN_LATENCY_MS,
    MIN_ROUTE_LENGTH,
    MIN_STATUS,
)
from schemas.utc import now_ms
from streams.client.batch_packer import pack_rows
from streams.client.recorder_config import RecorderConfig, RecorderStats
from streams.client.recorder_worker import DropCounter, Packer, RecorderWorker, Tick
from streams.client.usage_validation import RowValidator, occurred_at_ms


def _exit_hook(ref: weakref.ref[BufferedRecorder]) -> Callable[[], None]:
    def hook() -> None:
        recorder = ref()
        if recorder is not None:
            recorder.close(recorder.config.close_timeout_s)

    return hook


class BufferedRecorder:
    """A row buffer drained by a `RecorderWorker`: start, exit hook, stats, flush, close."""

    def __init__(
        self,
        config: RecorderConfig,
        pack: Packer = pack_rows,
        tick: Tick | None = None,
        thread_name: str = "keypulse-usage-recorder",
    ) -> None:
        self.config = config
        self._buf: deque[Any] = deque()
        self._bound = config.max_buffered_events
        self._drops = DropCounter()
        self._close_lock = threading.Lock()
        self._closed = False
        self._hook = _exit_hook(weakref.ref(self))
        self._worker = RecorderWorker(
            config,
            self._buf,
            self._drops,
            self._reregister_exit_hook,
            pack=pack,
            tick=tick,
            thread_name=thread_name,
        )
        atexit.register(self._hook)
        self._worker.start()

    def _reregister_exit_hook(self) -> None:
        """Run our hook before kafka-python's own (atexit is LIFO; a producer registers one)."""
        if not self._closed:
            atexit.unregister(self._hook)
            atexit.register(self._hook)

    def stats(self) -> RecorderStats:
        """A snapshot of the counters (see `RecorderStats` for their identity)."""
        return self._worker.stats()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded before the call is acknowledged by Kafka
        (including spilled events, which are resent first). False on timeout."""
        if self._closed:
            s = self.stats()
            return s.queued == 0 and s.spill_pending == 0
        return self._worker.flush(timeout)

    def close(self, timeout: float | None = None) -> RecorderStats:
        """Drain for at most `timeout` s (default `config.close_timeout_s`), then spill or
        drop and count what is left, stop the worker and return the final stats.
        Idempotent; safe to call from an atexit hook."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._bound = 0  # later record() calls drop and count
                atexit.unregister(self._hook)
                self._worker.close(self.config.close_timeout_s if timeout is None else timeout)
                stragglers = len(self._buf)  # appended while the worker shut down
                if stragglers and not self._worker.alive:
                    self._buf.clear()
                    self._drops.add(stragglers)
        return self.stats()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class UsageRecorder(BufferedRecorder):
    """Buffers request events and ships them to Kafka as `RequestBatch` records."""

    def __init__(self, config: RecorderConfig) -> None:
        self._validator = RowValidator()
        self._keys = self._validator.keys
        self._accounts = self._validator.accounts
        self._ips = self._validator.ips
        super().__init__(config)

    def record(
        self,
        key_id: str,
        account_id: str,
        method: str,
        route: str,
        status: int,
        latency_ms: float,
        client_ip: str,
        bytes_out: int = 0,
        is_render: bool = False,
        watermarked: bool = False,
        occurred_at: Any = None,
    ) -> None:
        """Queue one request event; `occurred_at` is None (now), an aware datetime or epoch ms.

        Integer fields (`status`, `bytes_out`, epoch ms) also take an integer-valued float
        (`200.0`), queued as the int, as the worker accepts it.

        Raises `ValueError` naming the first invalid field; never blocks, never raises
        because of Kafka. When the buffer is full the event is dropped and counted.
        """
        try:
            fast = (
                key_id in self._keys
                and account_id in self._accounts
                and method in HTTP_METHODS
                and client_ip in self._ips
                and type(route) is str
                and MIN_ROUTE_LENGTH <= len(route) <= MAX_ROUTE_LENGTH
                and route.isascii()  # other text is checked for lone surrogates
                and type(status) is int
                and MIN_STATUS <= status <= MAX_STATUS
                and (type(latency_ms) is float or type(latency_ms) is int)
                and MIN_LATENCY_MS <= latency_ms <= MAX_LATENCY_MS
                and type(bytes_out) is int
                and MIN_BYTES_OUT <= bytes_out <= MAX_BYTES_OUT
                and type(is_render) is bool
                and type(watermarked) is bool
            )
        except TypeError:  # an unhashable argument; the slow path names it
            fast = False
        if not fast:
            (
                key_id,
                account_id,
                method,
                route,
                status,
                latency_ms,
                client_ip,
                bytes_out,
                is_render,
                watermarked,
            ) = self._validator.normalize(
                key_id,
                account_id,
                method,
                route,
                status,
                latency_ms,
                client_ip,
                bytes_out,
                is_render,
                watermarked,
            )
        ms = now_ms() if occurred_at is None else occurred_at_ms(occurred_at)
        buf = self._buf
        if len(buf) < self._bound:
            buf.append(
                (
                    ms,
                    key_id,
                    account_id,
                    method,
                    route,
                    status,
                    latency_ms,
                    client_ip,
                    bytes_out,
                    is_render,
                    watermarked,
                )
            )
        else:
            self._drops.add(1)
