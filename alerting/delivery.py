"""Delivery of notifications: a delayed-retry queue in memory, every attempt in `deliveries`.

A *delivery* is one notification to one of its channels, identified by `delivery_id`
(stable: derived from the idempotency key and the channel id). Contracts:

- `select_jobs` (pure) decides which deliveries of a batch to start: one never seen
  before, or a replay of a delivery that is not already queued. Anything with a status
  (delivered, dead, disabled, pending, retrying) is not started again, so a notification
  re-published by the evaluator after a crash is not delivered twice.
- `DeliveryScheduler` runs attempts as tasks (at most `max_concurrent` at once), so a
  slow endpoint or a long Retry-After never blocks the consuming agent. After every
  attempt `RetryPolicy.decide` gives the next step and one row is appended: delivered,
  retrying (with `next_attempt_at`), dead, or disabled (a 410: the endpoint is recorded
  in `disabled_endpoints` and later deliveries to it are not attempted).
- Restart: `start()` reloads every delivery whose latest row is pending or retrying and
  schedules it at its `next_attempt_at` (pending: at once). An attempt that went out but
  whose row was not written before a crash is attempted again with the same idempotency
  key (at-least-once; receivers deduplicate on webhook-id / Message-ID / metadata).
- A replay (`replay=True`) re-enables a disabled endpoint and starts a new retry round:
  attempt numbers continue, the policy's schedule starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from alerting.channel_secrets import identity_channel
from alerting.fingerprint import channel_id
from alerting.notifier import Notifier, SendResult
from alerting.ports import (
    DeliveryLog,
    DeliveryLookup,
    DeliveryRecord,
    DeliveryStatus,
    DisabledEndpoint,
)
from alerting.render import one_line
from alerting.retry import RetryAction, RetryPolicy
from schemas.alerts import Channel, Notification
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from schemas.utc import utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS = {
    RetryAction.DONE: DeliveryStatus.DELIVERED,
    RetryAction.RETRY: DeliveryStatus.RETRYING,
    RetryAction.DEAD_LETTER: DeliveryStatus.DEAD,
    RetryAction.DISABLE_ENDPOINT: DeliveryStatus.DISABLED,
}


def endpoint_id(channel: Channel) -> str:
    """The channel's id, the same whichever master key wraps its sealed secrets."""
    return channel_id(identity_channel(channel))


def delivery_id(idempotency_key: str, chan_id: str) -> str:
    """`dlv_` + 20 hex characters, stable for (idempotency key, channel id)."""
    digest = hashlib.sha256(f"{idempotency_key}\x1f{chan_id}".encode()).hexdigest()
    return f"dlv_{digest[:20]}"


@dataclass(frozen=True)
class DeliveryJob:
    """The next attempt of one delivery. `round_offset`: attempts made in earlier rounds."""

    delivery_id: str
    notification: Notification
    channel_index: int
    attempt: int = 1
    first_attempt_at: datetime | None = None
    round_offset: int = 0
    replay: bool = False

    @property
    def channel(self) -> Channel:
        return self.notification.channels[self.channel_index]

    @property
    def channel_id(self) -> str:
        return endpoint_id(self.channel)


def expand(notification: Notification, replay_of: str | None = None) -> list[DeliveryJob]:
    """One job per channel; a replay keeps only the channel of the replayed delivery."""
    jobs = []
    for index, chan in enumerate(notification.channels):
        did = delivery_id(notification.idempotency_key, endpoint_id(chan))
        if replay_of is None or did == replay_of:
            jobs.append(DeliveryJob(did, notification, index, replay=replay_of is not None))
    return jobs


def select_jobs(
    jobs: Iterable[DeliveryJob], known: DeliveryLookup, queued: set[str]
) -> list[DeliveryJob]:
    """The jobs to start (see the module docstring), first occurrence of each id only."""
    out: list[DeliveryJob] = []
    seen: set[str] = set()
    for job in jobs:
        did = job.delivery_id
        if did in seen or did in queued:
            continue
        if job.replay:
            done = known.attempts.get(did, 0)
            out.append(replace(job, attempt=done + 1, round_offset=done))
        elif did not in known.status:
            out.append(job)
        seen.add(did)
    return out


def job_from_record(record: DeliveryRecord) -> DeliveryJob:
    """The next attempt of a delivery whose latest row is `record` (pending or retrying)."""
    return DeliveryJob(
        record.delivery_id,
        record.notification,
        record.channel_index,
        attempt=record.attempt + 1,
        first_attempt_at=record.first_attempt_at,
        round_offset=record.round_offset,
        replay=record.replay,
    )


@dataclass
class DeliveryStats:
    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    disabled: int = 0
    resumed: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class DeliveryScheduler:
    """The delayed-retry queue and attempt runner (see the module docstring)."""

    def __init__(
        self,
        notifier: Notifier,
        log_store: DeliveryLog,
        policy: RetryPolicy | None = None,
        *,
        max_concurrent: int = 16,
        clock: Callable[[], datetime] = utc_now,
        retry_max_s: float = 10.0,
        transient: IsTransient = io_failure,
    ) -> None:
        self._transient = transient
        self._notifier = notifier
        self._log = log_store
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._retry_max_s = retry_max_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-deliveries")
        self._heap: list[tuple[float, int, DeliveryJob]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: set[str] = set()
        self._disabled: set[str] = set()
        self._started = False
        self.stats = DeliveryStats()

    # ----------------------------------------------------------------- I/O

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a `DeliveryLog` call off the loop, retrying with backoff until it works."""
        return await off_loop_until_done(
            self._executor,
            fn,
            *args,
            logger=log,
            max_delay_s=self._retry_max_s,
            transient=self._transient,
        )

    # ----------------------------------------------------------------- queue

    @property
    def queued(self) -> set[str]:
        """Ids queued or in flight."""
        return set(self._open)

    async def lookup(self, delivery_ids: Sequence[str]) -> DeliveryLookup:
        """Latest status and attempt count of the known deliveries among the ids."""
        return await self.io(self._log.latest, list(delivery_ids))

    def is_disabled(self, chan_id: str) -> bool:
        return chan_id in self._disabled

    async def start(self) -> None:
        """Load disabled endpoints and resume open deliveries (idempotent)."""
        if self._started:
            return
        self._started = True
        self._disabled = set(await self.io(self._log.disabled_endpoints))
        for record in await self.io(self._log.open_deliveries):
            self.submit(job_from_record(record), record.next_attempt_at)
            self.stats.resumed += 1
        if self.stats.resumed:
            log.info("deliveries: resumed %d pending or retrying deliveries", self.stats.resumed)

    def submit(self, job: DeliveryJob, due: datetime | None = None) -> None:
        when = (due or self._clock()).timestamp()
        heapq.heappush(self._heap, (when, next(self._seq), job))
        self._open.add(job.delivery_id)
        self._changed.set()

    async def accept(self, jobs: Sequence[DeliveryJob]) -> None:
        """Record new deliveries as pending, then queue them for an immediate attempt."""
        if not jobs:
            return
        now = self._clock()
        for job in jobs:
            if job.replay and job.channel_id in self._disabled:
                self._disabled.discard(job.channel_id)
                await self.io(
                    self._log.set_endpoint,
                    DisabledEndpoint(job.channel_id, job.channel.type, "replayed", now, False),
                )
        await self.io(
            self._log.append,
            [self._record(j, j.attempt - 1, DeliveryStatus.PENDING, now, "") for j in jobs],
        )
        for job in jobs:
            self.submit(job)

    async def run(self) -> None:
        """Dispatch due jobs forever (cancel to stop)."""
        await self.start()
        while True:
            if not self._heap:
                await self._changed.wait()
                self._changed.clear()
                continue
            delay = self._heap[0][0] - self._clock().timestamp()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=delay)
                self._changed.clear()
                continue
            _, _, job = heapq.heappop(self._heap)
            await self._slots.acquire()
            task = asyncio.create_task(self._attempt(job))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("deliveries: attempt crashed", exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel in-flight attempts (they resume from their rows after a restart)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # ----------------------------------------------------------------- attempts

    def _record(
        self,
        job: DeliveryJob,
        attempt: int,
        status: str,
        at: datetime,
        outcome: str,
        detail: str = "",
        next_at: datetime | None = None,
        first: datetime | None = None,
    ) -> DeliveryRecord:
        return DeliveryRecord(
            delivery_id=job.delivery_id,
            notification=job.notification,
            channel_index=job.channel_index,
            channel_id=job.channel_id,
            attempt=attempt,
            at=at,
            status=status,
            outcome=outcome,
            detail=one_line(detail, 500),
            next_attempt_at=next_at,
            first_attempt_at=first or job.first_attempt_at,
            round_offset=job.round_offset,
            replay=job.replay,
        )

    async def _attempt(self, job: DeliveryJob) -> None:
        started = self._clock()
        first = job.first_attempt_at or started
        if job.channel_id in self._disabled:
            record = self._record(
                job, job.attempt, DeliveryStatus.DISABLED, started, "", "endpoint disabled", None
            )
            await self.io(self._log.append, [record])
            self._open.discard(job.delivery_id)
            self.stats.disabled += 1
            return
        try:
            result = await self._notifier.send(job.notification, job.channel)
        except Exception as exc:  # a notifier bug must not kill the queue
            result = SendResult.retryable(f"{type(exc).__name__}: {exc}")
        ended = self._clock()
        decision = self._policy.decide(
            result,
            attempt=job.attempt - job.round_offset,
            first_attempt_at=first,
            now=ended,
        )
        status = _STATUS[decision.action]
        self.stats.attempts += 1
        self.stats.by_outcome[result.outcome.value] = (
            self.stats.by_outcome.get(result.outcome.value, 0) + 1
        )
        if decision.action is RetryAction.DISABLE_ENDPOINT:
            self._disabled.add(job.channel_id)
            await self.io(
                self._log.set_endpoint,
                DisabledEndpoint(job.channel_id, job.channel.type, decision.reason, ended),
            )
        record = self._record(
            job,
            job.attempt,
            status,
            ended,
            result.outcome.value,
            decision.reason if status != DeliveryStatus.DELIVERED else result.detail,
            decision.retry_at,
            first,
        )
        await self.io(self._log.append, [record])
        if decision.action is RetryAction.RETRY:
            self.stats.retried += 1
            self.submit(
                replace(job, attempt=job.attempt + 1, first_attempt_at=first), decision.retry_at
            )
            return
        self._open.discard(job.delivery_id)
        if status == DeliveryStatus.DELIVERED:
            self.stats.delivered += 1
        elif status == DeliveryStatus.DEAD:
            self.stats.dead += 1
        else:
            self.stats.disabled += 1
