"""`KeyService`: decides key and account commands and appends their events (optimistic).

One decider thread per process takes every pending command, decides them account by
account on a scratch copy of the follower's ledger (`commands.decide`), appends the
resulting events (each with the account's next `seq` and `prev`), and waits until its own
follower has read them back. An event that is not the account's next one when it lands
(another process appended first) is ignored by every reader; the decider sees that
through `KeyFollower.watch`, catches up and decides those commands again. So any number of
processes may run a key service against one topic and plan limits still hold exactly.

A refusal is only answered on a state read after the command arrived (`KeyFollower.sync`),
so a key created or revoked a moment ago by another process is never missed. A caller
that gets no answer within `answer_timeout_s` gets `Unavailable` (HTTP 503 with
Retry-After); creates with an idempotency key, and every other command, are safe to retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

from schemas.key_format import generate_secret, new_key_id
from schemas.key_ledger import AccountLedger, KeyRecord, Refusal, apply
from schemas.keys import KeyEventModel
from schemas.plans import Plan
from schemas.utc import utc_now
from schemas.uuid7 import uuid7
from streams.client.key_events import KeyEventPublisher, PublisherConfig, PublishError
from streams.client.key_follower import FollowerConfig, KeyFollower, NotReady
from streams.client.key_state_writer import KeyStateWriter, WriterConfig
from streams.keyservice.commands import Command, CommandRefused, Context, Decision, decide

log = logging.getLogger(__name__)

IpAddress = IPv4Address | IPv6Address


class Unavailable(Exception):
    """No answer in time (Kafka slow or unreachable, or the state not caught up); the
    command may or may not have been applied, and is safe to retry."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ServiceConfig:
    answer_timeout_s: float = 5.0
    retry_after_s: int = 1
    max_rounds_per_command: int = 50
    state_interval_s: float = 5.0
    """How often the key-state snapshot is brought up to date (with `write_state`)."""


@dataclass(frozen=True)
class AccountView:
    """An account right after a command: its plan and active key counts per class."""

    account_id: str
    plan: Plan
    seq: int
    active: dict[str, int]
    limits: dict[str, int | None]

    @classmethod
    def of(cls, ledger: AccountLedger, now: datetime) -> AccountView:
        """The view at `now` (a key that expired since the last event no longer counts)."""
        classes = ("live", "test", "admin")
        return cls(
            ledger.account_id,
            ledger.plan,
            ledger.seq,
            {c: ledger.count(c, now) for c in classes},
            {c: ledger.limit(c) for c in classes},
        )


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    key: KeyRecord | None
    account: AccountView | None


@dataclass
class _Job:
    command: Command
    actor: str
    source_ip: IpAddress | None
    deadline: float
    future: Future[Outcome] = field(default_factory=Future)
    rounds: int = 0


@dataclass
class _Decided:
    job: _Job
    decision: Decision | None = None
    refused: CommandRefused | None = None
    key: KeyRecord | None = None
    account: AccountView | None = None


class _AllRead:
    """Set once every watched event was read back, or once a watch or a send failed."""

    def __init__(self, watches: int) -> None:
        self._left = watches
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.failure: BaseException | None = None
        if watches == 0:
            self._done.set()

    def read(self, future: Future[Refusal | None]) -> None:
        error = future.exception()
        with self._lock:
            self._left -= 1
            if error is not None and self.failure is None:
                self.failure = error
            if self._left == 0 or error is not None:
                self._done.set()

    def sent(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            with self._lock:
                if self.failure is None:
                    self.failure = error
            self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


@dataclass(frozen=True)
class Ids:
    """Where new ids and secrets come from (tests pass deterministic ones)."""

    event_id: Callable[[], UUID] = uuid7
    key_id: Callable[[], str] = new_key_id
    secret: Callable[[str], str] = generate_secret


class KeyService:
    def __init__(
        self,
        follower: KeyFollower,
        publisher: KeyEventPublisher,
        config: ServiceConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
        ids: Ids | None = None,
        owns_clients: bool = False,
        state_writer: KeyStateWriter | None = None,
    ) -> None:
        self.follower = follower
        self.state_writer = state_writer
        self._owns_clients = owns_clients
        self.config = config or ServiceConfig()
        self._publisher = publisher
        self._clock = clock
        self._ids = ids or Ids()
        self._lock = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._decider, name="key-decider", daemon=True)
        self._thread.start()
        self.rounds = 0
        self.lost_races = 0

    def submit(
        self, command: Command, *, actor: str = "system", source_ip: IpAddress | None = None
    ) -> Future[Outcome]:
        """Queue `command` for the decider; the future resolves once this process applied
        its events (or fails with `CommandRefused` / `Unavailable`)."""
        job = _Job(command, actor, source_ip, time.monotonic() + self.config.answer_timeout_s)
        with self._lock:
            if self._closed:
                raise Unavailable("the key service is shutting down")
            self._pending.append(job)
            self._lock.notify()
        return job.future

    def execute(
        self, command: Command, *, actor: str = "system", source_ip: IpAddress | None = None
    ) -> Outcome:
        """Decide `command`, append its events and return once this process applied them.
        Raises `CommandRefused` (with its code) or `Unavailable`."""
        future = self.submit(command, actor=actor, source_ip=source_ip)
        try:
            return future.result(self.config.answer_timeout_s + 1.0)
        except FutureTimeout as exc:
            raise self._unavailable("no answer in time") from exc

    async def execute_async(
        self, command: Command, *, actor: str = "system", source_ip: IpAddress | None = None
    ) -> Outcome:
        """`execute` for an event loop: waits without holding a thread."""
        future = asyncio.wrap_future(self.submit(command, actor=actor, source_ip=source_ip))
        try:
            return await asyncio.wait_for(future, self.config.answer_timeout_s + 1.0)
        except TimeoutError as exc:
            raise self._unavailable("no answer in time") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(10)
        if self.state_writer is not None:
            self.state_writer.close()
        if self._owns_clients:
            self._publisher.close()
            self.follower.close()

    def __enter__(self) -> KeyService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _unavailable(self, why: str) -> Unavailable:
        return Unavailable(
            f"{why}; the command may not have been applied, retry it "
            f"(after {self.config.retry_after_s} s)",
            self.config.retry_after_s,
        )

    # -- the decider thread ----------------------------------------------------------

    def _decider(self) -> None:
        must_sync = False
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or bool(self._pending))
                if self._closed:
                    jobs, self._pending = list(self._pending), deque()
                    for job in jobs:
                        job.future.set_exception(self._unavailable("shutting down"))
                    return
                jobs, self._pending = list(self._pending), deque()
            try:
                must_sync = self._round(jobs, must_sync)
            except Exception as exc:  # never leave a caller hanging
                log.exception("key service round failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(self._unavailable(f"internal error {exc!r}"))
                must_sync = True

    def _round(self, jobs: list[_Job], must_sync: bool) -> bool:
        """Decide, append and confirm one group; return whether the next round must first
        catch up with the topic."""
        self.rounds += 1
        now_mono = time.monotonic()
        live = [j for j in jobs if not self._expired(j, now_mono)]
        if not live:
            return must_sync
        if must_sync and not self._sync(live):
            return True
        decided = self._decide_all(live)
        if any(d.refused is not None for d in decided) and not must_sync:
            if not self._sync(live):
                return True
            decided = self._decide_all(live)
        return self._append_and_confirm(decided)

    def _expired(self, job: _Job, now_mono: float) -> bool:
        if now_mono < job.deadline and job.rounds < self.config.max_rounds_per_command:
            return False
        job.future.set_exception(self._unavailable("the account is busy or Kafka is slow"))
        return True

    def _sync(self, jobs: list[_Job]) -> bool:
        try:
            self.follower.sync(timeout=max(0.1, min(j.deadline for j in jobs) - time.monotonic()))
            return True
        except (TimeoutError, NotReady, OSError) as exc:
            for job in jobs:
                job.future.set_exception(self._unavailable(f"key state not caught up: {exc}"))
            return False

    def _decide_all(self, jobs: list[_Job]) -> list[_Decided]:
        scratch: dict[str, AccountLedger | None] = {}
        out: list[_Decided] = []
        for job in jobs:
            account = job.command.account_id
            if account not in scratch:
                scratch[account] = self.follower.snapshot(account)
            out.append(self._decide_one(job, scratch, account))
        return out

    def _decide_one(
        self, job: _Job, scratch: dict[str, AccountLedger | None], account: str
    ) -> _Decided:
        ctx = Context(
            now=self._clock(),
            actor=job.actor,
            source_ip=job.source_ip,
            new_event_id=self._ids.event_id,
            new_key_id=self._ids.key_id,
            new_secret=self._ids.secret,
        )
        ledger = scratch[account]
        try:
            decision = decide(ledger, job.command, ctx)
        except CommandRefused as refused:
            return _Decided(job, refused=refused)
        for event in decision.events:
            ledger, refusal = apply(ledger, event)
            assert refusal is None, f"decide() made an event check() refuses: {refusal}"
        scratch[account] = ledger
        key = None
        if ledger is not None and decision.key_id is not None:
            key = ledger.keys.get(decision.key_id)
        view = AccountView.of(ledger, ctx.now) if ledger is not None else None
        return _Decided(job, decision=decision, key=key, account=view)

    def _append_and_confirm(self, decided: list[_Decided]) -> bool:
        events: list[KeyEventModel] = [
            e for d in decided if d.decision is not None for e in d.decision.events
        ]
        outcomes: dict[UUID, Refusal | None] = {}
        if events:
            try:
                outcomes = self._append(events, min(d.job.deadline for d in decided))
            except Unavailable as exc:
                for d in decided:
                    d.job.future.set_exception(exc)
                return True
        return self._settle(decided, outcomes)

    def _append(self, events: list[KeyEventModel], deadline: float) -> dict[UUID, Refusal | None]:
        """Append `events` and return how the follower judged each. Waits for the
        read-back, not for each broker confirmation (an event read back is in the log; a
        failed send still ends the wait at once), and wakes once: every wake-up of this
        thread waits for the GIL behind the HTTP requests queued for it."""
        ids = [e.event_id for e in events]
        watches = self.follower.watch(ids)
        settled = _AllRead(len(watches))
        for watch in watches:
            watch.add_done_callback(settled.read)
        try:
            for event in events:
                self._publisher.publish(event, wait=False).add_done_callback(settled.sent)
            if not settled.wait(max(0.05, deadline - time.monotonic())):
                raise FutureTimeout("no read-back before the deadline")
            if settled.failure is not None:
                raise settled.failure
            return {i: w.result() for i, w in zip(ids, watches, strict=True)}
        except (PublishError, FutureTimeout, NotReady) as exc:
            raise self._unavailable(f"the key events were not confirmed ({exc})") from exc
        finally:
            self.follower.unwatch(ids)

    def _settle(self, decided: list[_Decided], outcomes: dict[UUID, Refusal | None]) -> bool:
        """Answer every job whose events were applied (and the jobs of its account decided
        before a lost one); put the rest back, in order, to be decided again."""
        lost_accounts: set[str] = set()
        retry: list[_Job] = []
        for d in decided:
            account = d.job.command.account_id
            lost = d.decision is not None and any(
                outcomes.get(e.event_id) is not None for e in d.decision.events
            )
            if lost or account in lost_accounts:
                lost_accounts.add(account)
                d.job.rounds += 1
                retry.append(d.job)
            elif d.refused is not None:
                d.job.future.set_exception(d.refused)
            else:
                assert d.decision is not None
                d.job.future.set_result(Outcome(d.decision, d.key, d.account))
        if retry:
            self.lost_races += 1
            with self._lock:
                self._pending.extendleft(reversed(retry))
        return bool(retry)


def start_key_service(
    bootstrap_servers: str,
    topic: str,
    config: ServiceConfig | None = None,
    ready_timeout_s: float = 30.0,
    client_id: str = "keypulse-key-service",
    state_topic: str | None = None,
    write_state: bool = False,
) -> KeyService:
    """A key service with its own follower and publisher (closed by its `close()`), once
    the follower has read the topic to its end. With `state_topic` the follower starts
    from the key-state snapshot; with `write_state` as well, the service keeps that
    snapshot up to date (`KeyStateWriter`; the long-running API processes do)."""
    follower = KeyFollower(
        FollowerConfig(bootstrap_servers, topic, client_id=client_id, state_topic=state_topic)
    )
    follower.start()
    try:
        follower.wait_ready(ready_timeout_s)
    except NotReady:
        follower.close()
        raise
    publisher = KeyEventPublisher(PublisherConfig(bootstrap_servers, topic, client_id=client_id))
    writer = None
    if state_topic is not None and write_state:
        interval = (config or ServiceConfig()).state_interval_s
        writer_config = WriterConfig(bootstrap_servers, state_topic, interval_s=interval)
        writer = KeyStateWriter(follower, writer_config).start()
    return KeyService(follower, publisher, config, owns_clients=True, state_writer=writer)
