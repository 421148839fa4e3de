"""The notifier inside the worker: notifications from Kafka to a real local webhook server.

Retries keep the webhook-id, a 410 disables the endpoint, a 400 is a dead letter that a
replay delivers, a re-published notification is not delivered twice, and a retry that
was pending when the worker stopped completes after the restart.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from alerting.agents import NotifierAgent
from alerting.channel_secrets import seal_channels
from alerting.delivery import DeliveryScheduler, delivery_id, endpoint_id
from alerting.fingerprint import fingerprint, idempotency_key
from alerting.sealing import parse_keyring
from infra import alert_admin
from infra.clickhouse import make_client
from infra.settings import Settings
from infra.tools.receivers import HttpReceiver, start_http
from infra.wiring import Worker, running_worker
from projections.alert_store import ClickHouseDeliveryLog
from schemas.alerts import Notification, NotificationKind, WebhookChannel
from schemas.codec import encode
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import TEST_MASTER_KEYRING, alert_settings
from tests.samples.alerting import SECRET

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]
TEST_KEYRING = parse_keyring(TEST_MASTER_KEYRING, "tests")


def notification(key: str, url: str) -> Notification:
    fp = fingerprint("rule_dlv", key)
    return Notification(
        idempotency_key=idempotency_key(fp, 1, NotificationKind.FIRING),
        fingerprint=fp,
        rule={"rule_id": "rule_dlv", "name": "Delivery test", "kind": "request_count"},
        account_id="acc_dlv",
        key_id=key,
        key_name=key,
        state=NotificationKind.FIRING,
        value=150.0,
        threshold=100.0,
        comparator="gt",
        window_s=60,
        started_at=datetime.now(UTC),
        episode=1,
        occurred_at=datetime.now(UTC),
        channels=seal_channels(  # as the evaluator copies them from a rule: sealed
            [WebhookChannel(url=url, secret=SECRET)], "acc_dlv", "rule_dlv", TEST_KEYRING
        )[0],
    )


def did(n: Notification) -> str:
    return delivery_id(n.idempotency_key, endpoint_id(n.channels[0]))


class Script:
    """Per-path scripted statuses (then 200), recording webhook-ids per path."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self.ids: dict[str, list[str]] = defaultdict(list)

    async def respond(self, request: web.Request, _: bytes) -> web.StreamResponse:
        self.ids[request.path].append(request.headers["webhook-id"])
        queue = self.statuses[request.path]
        status, headers = queue.pop(0) if queue else (200, {})
        return web.Response(status=status, text="scripted", headers=headers)


def publish(settings: Settings, notifications: list[Notification]) -> None:
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (n.fingerprint.encode(), encode(n), []) for n in notifications
    ]
    alert_admin.publish(
        settings, TopicNames.with_prefix(settings.kafka.topic_prefix).notifications, records
    )


def statuses(worker_settings: Settings, ids: list[str]) -> dict[str, str]:
    client = make_client(worker_settings)
    try:
        return ClickHouseDeliveryLog(client).latest(ids).status
    finally:
        client.close()


async def test_retries_410_dead_letters_replay_and_resume(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    server = await start_http()
    try:
        await _scenario(tmp_path, kafka_bootstrap, topic_prefix, server)
    finally:
        await server.stop()


async def _scenario(tmp_path: Path, bootstrap: str, prefix: str, server: HttpReceiver) -> None:
    script = Script()
    server.default = script.respond
    settings = alert_settings(
        tmp_path, bootstrap, prefix, evaluator_enabled=False, retry_fast_delays_s=[0.3, 0.3, 0.3]
    )
    retried = notification("key_retry0001", server.url("/retry"))
    gone = notification("key_gone00001", server.url("/gone"))
    gone_again = notification("key_gone00002", server.url("/gone"))
    bad = notification("key_bad000001", server.url("/bad"))
    resumed = notification("key_resume001", server.url("/resume"))
    script.statuses["/retry"] = [(503, {}), (429, {"Retry-After": "0"})]
    script.statuses["/gone"] = [(410, {})]
    script.statuses["/bad"] = [(400, {})]
    script.statuses["/resume"] = [(503, {"Retry-After": "3"})]

    async with running_worker(settings) as worker:
        await asyncio.to_thread(publish, settings, [retried, gone, bad, resumed])
        await eventually(
            lambda: len(script.ids["/retry"]) == 3 and len(script.ids["/resume"]) == 1,
            30,
            "the retries",
        )
        await asyncio.to_thread(publish, settings, [gone_again, retried])  # + a duplicate
        await eventually(lambda: _notifier(worker).received == 6, 30, "all six handed over")
        await eventually(lambda: _scheduler(worker).stats.disabled >= 2, 30, "two disabled")
        # Only the retry that waits for its Retry-After is left: the duplicate was not queued.
        assert _scheduler(worker).queued == {did(resumed)}
    # /resume is waiting for its retry (Retry-After 3 s): the restart must resume it.
    assert len(script.ids["/resume"]) == 1

    found = await asyncio.to_thread(
        statuses, settings, [did(n) for n in (retried, gone, gone_again, bad, resumed)]
    )
    assert found == {
        did(retried): "delivered",
        did(gone): "disabled",
        did(gone_again): "disabled",
        did(bad): "dead",
        did(resumed): "retrying",
    }
    assert script.ids["/retry"] == [retried.idempotency_key] * 3  # same webhook-id each time
    assert len(script.ids["/gone"]) == 1  # the disabled endpoint was not called again

    async with running_worker(settings) as worker:
        await eventually(lambda: len(script.ids["/resume"]) == 2, 30, "the resumed retry")
        assert _scheduler(worker).stats.resumed == 1
        await asyncio.to_thread(alert_admin.publish_replay, settings, bad, did(bad))
        await eventually(lambda: len(script.ids["/bad"]) == 2, 30, "the replay")
        await eventually(lambda: _scheduler(worker).stats.delivered >= 2, 30, "two delivered")

    found = await asyncio.to_thread(statuses, settings, [did(bad), did(resumed)])
    assert found == {did(bad): "delivered", did(resumed): "delivered"}
    assert Counter(script.ids["/retry"]) == {retried.idempotency_key: 3}


def _notifier(worker: Worker) -> NotifierAgent:
    assert worker.alerting is not None and worker.alerting.notifier is not None
    return worker.alerting.notifier


def _scheduler(worker: Worker) -> DeliveryScheduler:
    assert worker.alerting is not None and worker.alerting.scheduler is not None
    return worker.alerting.scheduler
