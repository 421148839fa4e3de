"""Faust agent bodies of alerting: the rules projection and the notifier.

Both follow the agent pattern: take a batch of events, decode (invalid records go to the
dead-letter topic with their reason), call pure functions, do the I/O off the loop, and
return so faust commits the offsets only after the effects are durable.

- `RulesAgent`: `keypulse.alert-rules` -> `alert_rules` (version = source offset), then
  tells its listeners (the evaluator) about the changes.
- `NotifierAgent`: `keypulse.notifications` -> deliveries. Per batch it looks the
  deliveries up in the log, records the new ones as pending and hands them to the
  `DeliveryScheduler`; attempts and retries run outside the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alerting.delivery import DeliveryJob, DeliveryScheduler, expand, select_jobs
from alerting.ports import RuleChange, RuleStore
from schemas.alerts import AlertRuleDeleted
from schemas.codec import REPLAY_HEADER, decode_notification, decode_rule_event, header_value
from schemas.runtime.dead_letters import DeadLetterSink, decode_or_dead_letter
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done

log = logging.getLogger(__name__)

RuleListener = Callable[[Sequence[RuleChange]], None]


class RulesAgent:
    def __init__(
        self,
        topic: str,
        store: RuleStore,
        dead_letters: DeadLetterSink,
        *,
        transient: IsTransient = io_failure,
    ) -> None:
        self._topic = topic
        self._store = store
        self._transient = transient
        self._dlq = dead_letters
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-rules")
        self.listeners: list[RuleListener] = []
        self.processed = 0

    async def run(self, stream: Any) -> None:
        async for events in stream.take_events(500, 0.1):
            await self.process_events(events)

    async def process_events(self, events: Sequence[Any]) -> None:
        changes: list[RuleChange] = []
        for e in events:
            msg = e.message
            event = await decode_or_dead_letter(msg, decode_rule_event, self._topic, self._dlq)
            if event is None:
                continue
            if isinstance(event, AlertRuleDeleted):
                change = RuleChange(
                    event.rule_id, event.account_id, None, msg.offset, event.occurred_at
                )
            else:
                rule = event.rule
                change = RuleChange(
                    rule.rule_id, rule.account_id, rule, msg.offset, event.occurred_at
                )
            changes.append(change)
        if not changes:
            return
        await off_loop_until_done(
            self._executor, self._store.apply, changes, logger=log, transient=self._transient
        )
        self.processed += len(changes)
        for listener in self.listeners:
            listener(changes)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class NotifierAgent:
    def __init__(
        self, topic: str, scheduler: DeliveryScheduler, dead_letters: DeadLetterSink
    ) -> None:
        self._topic = topic
        self._scheduler = scheduler
        self._dlq = dead_letters
        self.received = 0

    async def run(self, stream: Any) -> None:
        """Consume notifications; the scheduler's dispatcher runs alongside."""
        await self._scheduler.start()
        dispatcher = asyncio.create_task(self._scheduler.run())
        try:
            async for events in stream.take_events(200, 0.05):
                await self.process_events(events)
        finally:
            dispatcher.cancel()
            with contextlib.suppress(BaseException):
                await dispatcher
            await self._scheduler.stop()

    async def process_events(self, events: Sequence[Any]) -> None:
        """Hand a batch's deliveries to the scheduler; then count its notifications in
        `received` (so a test that waits on it knows they were selected and accepted)."""
        jobs: list[DeliveryJob] = []
        decoded = 0
        for e in events:
            msg = e.message
            notification = await decode_or_dead_letter(
                msg, decode_notification, self._topic, self._dlq
            )
            if notification is None:
                continue
            decoded += 1
            jobs.extend(expand(notification, header_value(msg.headers, REPLAY_HEADER)))
        await self.deliver(jobs)
        self.received += decoded

    async def deliver(self, jobs: Iterable[DeliveryJob]) -> None:
        jobs = list(jobs)
        if not jobs:
            return
        scheduler = self._scheduler
        known = await scheduler.lookup([j.delivery_id for j in jobs])
        await scheduler.accept(select_jobs(jobs, known, scheduler.queued))
