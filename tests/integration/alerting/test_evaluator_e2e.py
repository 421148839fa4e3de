"""End to end: traffic through Kafka and the worker breaches a rule, the webhook, SMTP and
Slack servers each get exactly one firing notification; a worker restart notifies nobody
again; traffic back to normal gives exactly one resolved notification each."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from alerting.agents import NotifierAgent
from alerting.delivery import DeliveryScheduler
from alerting.evaluator import Evaluator
from alerting.fingerprint import fingerprint
from infra import alert_admin
from infra.clickhouse import make_client
from infra.settings import Settings
from infra.tools.receivers import HttpReceiver, MailSink, SmtpReceiver, start_http, start_smtp
from infra.wiring import Worker, running_worker
from projections.alert_store import ClickHouseAlertStateStore, ClickHouseDeliveryLog
from schemas.alerts import AlertState, NotificationKind
from schemas.plans import Plan
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.alerting.alert_e2e_support import (
    alert_settings,
    away_from_minute_end,
    record_traffic,
)
from tests.samples.alerting import SECRET
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_e2e"
KEY = "key_e2e00001"
RULE = "rule_e2e_errors"
FP = fingerprint(RULE, KEY)


@dataclass
class Sinks:
    """The three receivers: a webhook endpoint, a stand-in for Slack and an SMTP sink."""

    hook: HttpReceiver
    slack: HttpReceiver
    mail: MailSink
    smtp: SmtpReceiver

    def counts(self) -> tuple[int, int, int]:
        return len(self.hook.received), len(self.slack.received), len(self.mail.messages)


@dataclass
class Alerting:
    """The worker's evaluator, notifier agent and delivery scheduler."""

    evaluator: Evaluator
    notifier: NotifierAgent
    scheduler: DeliveryScheduler

    @classmethod
    def of(cls, worker: Worker) -> Alerting:
        parts = worker.alerting
        assert parts is not None and parts.evaluator is not None
        assert parts.notifier is not None and parts.scheduler is not None
        return cls(parts.evaluator, parts.notifier, parts.scheduler)

    async def settled(self, what: str) -> None:
        """Wait for three more evaluator cycles, then until every notification this
        evaluator published was consumed and no delivery is queued or in flight."""
        evaluator, notifier, scheduler = self.evaluator, self.notifier, self.scheduler
        cycles = evaluator.stats.cycles
        await eventually(lambda: evaluator.stats.cycles >= cycles + 3, 30, f"cycles after {what}")
        await eventually(
            lambda: notifier.received >= evaluator.stats.notifications and not scheduler.queued,
            30,
            f"the deliveries after {what}",
        )


async def _notifies_each_sink_once(
    alerting: Alerting,
    sinks: Sinks,
    record: Callable[[list[int]], None],
    statuses: list[int],
    what: str,
) -> None:
    """Recording `statuses` makes the evaluator notify once, and each sink gets one more."""
    before = sinks.counts()
    notified = alerting.evaluator.stats.notifications
    await asyncio.to_thread(record, statuses)
    more = tuple(n + 1 for n in before)
    await eventually(
        lambda: all(n >= m for n, m in zip(sinks.counts(), more, strict=True)),
        60,
        f"the notifications of {what}",
    )
    await alerting.settled(what)
    assert alerting.evaluator.stats.notifications == notified + 1
    assert sinks.counts() == more


async def test_breach_fires_once_per_channel_survives_restart_and_resolves_once(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    mail = MailSink()
    sinks = Sinks(await start_http(), await start_http(), mail, await start_smtp(mail))
    try:
        await _scenario(tmp_path, kafka_bootstrap, topics, topic_prefix, sinks)
    finally:
        await sinks.hook.stop()
        await sinks.slack.stop()
        await sinks.smtp.stop()


async def _scenario(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str, sinks: Sinks
) -> None:
    settings = alert_settings(tmp_path, kafka_bootstrap, topic_prefix, sinks.smtp.port)
    rule = alert_admin.build_rule(
        {
            "rule_id": RULE,
            "account_id": ACCOUNT,
            "name": "Error spike",
            "scope": {"type": "key", "key_id": KEY},
            "kind": "error_rate",
            "window_s": "1m",
            "threshold": 50,
            "min_requests": 10,
            "channels": [
                {"type": "webhook", "url": sinks.hook.url("/hook"), "secret": SECRET},
                {"type": "slack", "webhook_url": sinks.slack.url("/services/T0/B0/X")},
                {"type": "email", "to": ["ops@example.com"]},
            ],
        }
    )
    await asyncio.to_thread(alert_admin.check_rule_urls, rule, settings)
    await asyncio.to_thread(alert_admin.publish_rule, settings, rule)
    chain = Chain(ACCOUNT, Plan.PRO)
    chain.create_key(KEY, "Production server")
    await asyncio.to_thread(publish, kafka_bootstrap, topics.key_events, chain.events)
    await away_from_minute_end()
    async with running_worker(settings) as worker:
        alerting = Alerting.of(worker)
        evaluator = alerting.evaluator
        # Before any traffic the key-scoped rule sees no data: an explicit nodata state.
        await eventually(
            lambda: [i.state for i in evaluator.instances()] == [AlertState.NODATA],
            30,
            "the rule's instance in nodata",
        )
        record = functools.partial(record_traffic, kafka_bootstrap, topics.requests, KEY, ACCOUNT)
        await _notifies_each_sink_once(alerting, sinks, record, [500] * 20, "the firing")

    # Restart: the evaluator restores the firing instance and does not notify again.
    async with running_worker(settings) as worker:
        alerting = Alerting.of(worker)
        evaluator = alerting.evaluator
        await alerting.settled("the restart")
        assert {i.fingerprint: i.state for i in evaluator.instances()} == {FP: AlertState.FIRING}
        assert evaluator.stats.notifications == 0
        assert sinks.counts() == (1, 1, 1)

        await _notifies_each_sink_once(alerting, sinks, record, [200] * 60, "the resolve")

    _check_payloads(settings, sinks)


def _check_payloads(settings: Settings, sinks: Sinks) -> None:
    hook, slack, mail = sinks.hook, sinks.slack, sinks.mail
    webhook = Webhook(SECRET)
    firing, resolved = (webhook.verify(r.body, r.headers) for r in hook.received)
    assert (firing["type"], resolved["type"]) == ("alert.firing", "alert.resolved")
    assert firing["data"]["key"] == {"id": KEY, "name": "Production server"}
    assert firing["data"]["value"] == 100.0
    assert firing["data"]["threshold"] == 50.0
    assert resolved["data"]["ended_at"] is not None
    assert hook.received[0].headers["webhook-id"] == f"{FP}.1.firing"
    assert hook.received[1].headers["webhook-id"] == f"{FP}.1.resolved"

    slack_texts = [json.loads(r.body)["text"] for r in slack.received]
    assert slack_texts[0].startswith("[FIRING] Error spike on Production server (key_e2e00001)")
    assert slack_texts[1].startswith("[RESOLVED] Error spike on Production server")

    subjects = [m["Subject"] for m in mail.messages]
    assert subjects == [
        "[FIRING] Error spike on Production server (key_e2e00001)",
        "[RESOLVED] Error spike on Production server (key_e2e00001)",
    ]
    assert mail.messages[1]["In-Reply-To"] == mail.messages[0]["Message-ID"]

    client = make_client(settings)
    try:
        history = ClickHouseAlertStateStore(client).history(FP)
        notified = [(h.to_state, h.notified) for h in history if h.notified]
        assert notified == [
            (AlertState.FIRING, NotificationKind.FIRING),
            (AlertState.RESOLVED, NotificationKind.RESOLVED),
        ]
        # Before any traffic the key-scoped rule saw no data: an explicit nodata state.
        assert (history[0].from_state, history[0].to_state) == (
            AlertState.NORMAL,
            AlertState.NODATA,
        )
        delivered = ClickHouseDeliveryLog(client).list_latest(["delivered"])
        assert len(delivered) == 6
    finally:
        client.close()
