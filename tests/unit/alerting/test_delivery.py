"""Delivery selection and the retry scheduler with an in-memory log and a scripted notifier."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from alerting.delivery import DeliveryScheduler, expand, job_from_record, select_jobs
from alerting.notifier import SendResult
from alerting.ports import DeliveryLookup, DeliveryRecord
from alerting.retry import RetryPolicy
from schemas.alerts import Channel, Notification
from tests.eventually import eventually
from tests.fakes.alerting import MemoryLog
from tests.samples.alerting import SECRET, make_notification

FAST = RetryPolicy(fast_delays_s=(0.01, 0.01, 0.01), give_up_after_s=60)


def notification() -> Notification:
    base = make_notification()
    channels = [
        {"type": "webhook", "url": "https://hooks.example.com/a", "secret": SECRET},
        {"type": "email", "to": ["ops@example.com"]},
    ]
    return Notification.model_validate(base.model_dump() | {"channels": channels})


class Scripted:
    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, str]] = []

    async def send(self, n: Notification, channel: Channel) -> SendResult:
        self.calls.append((n.idempotency_key, channel.type))
        return self.results.pop(0) if self.results else SendResult.delivered("ok")


async def run_until(
    scheduler: DeliveryScheduler, done: Callable[[], bool], what: str, timeout_s: float = 5
) -> None:
    """Run the scheduler until `done()` holds, then stop it."""
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(done, timeout_s, what, interval_s=0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await scheduler.stop()
        scheduler.close()


def test_select_skips_known_and_queued_but_replays_continue_numbering() -> None:
    n = notification()
    webhook, mail = expand(n)
    known = DeliveryLookup({webhook.delivery_id: "dead"}, {webhook.delivery_id: 4})
    assert select_jobs([webhook, mail, mail], known, set()) == [mail]
    assert select_jobs([webhook, mail], DeliveryLookup(), {mail.delivery_id}) == [webhook]
    [replay] = expand(n, replay_of=webhook.delivery_id)
    [again] = select_jobs([replay], known, set())
    assert (again.attempt, again.round_offset, again.replay) == (5, 4, True)


async def test_retries_then_delivers_dead_letters_and_disables() -> None:
    log = MemoryLog()
    notifier = Scripted(
        SendResult.retryable("HTTP 503"),  # webhook, attempt 1
        SendResult.permanent("SMTP 550"),  # email, attempt 1
        SendResult.retryable("HTTP 429", retry_after_s=0.02),  # webhook, attempt 2
    )
    scheduler = DeliveryScheduler(notifier, log, FAST)
    await scheduler.start()
    webhook, mail = expand(notification())
    await scheduler.accept([webhook, mail])
    await run_until(scheduler, lambda: not scheduler.queued, "an empty queue")
    statuses = [(r.delivery_id == webhook.delivery_id, r.attempt, r.status) for r in log.rows]
    assert statuses == [
        (True, 0, "pending"),
        (False, 0, "pending"),
        (True, 1, "retrying"),
        (False, 1, "dead"),
        (True, 2, "retrying"),
        (True, 3, "delivered"),
    ]
    assert log.rows[2].next_attempt_at is not None

    gone = MemoryLog()
    scheduler = DeliveryScheduler(Scripted(SendResult.disable_endpoint("HTTP 410")), gone, FAST)
    await scheduler.start()
    first, _ = expand(notification())
    await scheduler.accept([first])
    await run_until(scheduler, lambda: not scheduler.queued, "an empty queue")
    assert gone.rows[-1].status == "disabled"
    assert gone.disabled_endpoints() == {first.channel_id}


async def test_open_deliveries_resume_after_a_restart() -> None:
    log = MemoryLog()
    webhook, _ = expand(notification())
    now = datetime.now(UTC)
    log.append(
        [
            DeliveryRecord(
                webhook.delivery_id,
                webhook.notification,
                0,
                webhook.channel_id,
                attempt=2,
                at=now,
                status="retrying",
                next_attempt_at=now,
                first_attempt_at=now,
            )
        ]
    )
    assert job_from_record(log.rows[0]).attempt == 3
    notifier = Scripted()
    scheduler = DeliveryScheduler(notifier, log, FAST)
    await scheduler.start()
    assert scheduler.stats.resumed == 1
    await run_until(scheduler, lambda: not scheduler.queued, "an empty queue")
    assert log.rows[-1].attempt == 3 and log.rows[-1].status == "delivered"
    assert notifier.calls == [(webhook.notification.idempotency_key, "webhook")]
