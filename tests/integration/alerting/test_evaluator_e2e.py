"""End to end: traffic through Kafka and the worker breaches a rule, the webhook, SMTP and
Slack servers each get exactly one firing notification; a worker restart notifies nobody
again; traffic back to normal gives exactly one resolved notification each."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from alerting.evaluator import Evaluator
from alerting.fingerprint import fingerprint
from infra import alert_admin
from infra.clickhouse import make_client
from infra.wiring import Worker, running_worker
from projections.alert_store import ClickHouseAlertStateStore, ClickHouseDeliveryLog
from schemas.alerts import AlertState, NotificationKind
from schemas.codec import encode
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.topics import TopicNames
from tests.integration.alerting.alert_e2e_support import (
    MailSink,
    alert_settings,
    away_from_minute_end,
    record_traffic,
    start_smtp,
    wait_until,
)
from tests.integration.alerting.alert_servers import HttpServer, start_http_server
from tests.integration.ingest_helpers import produce
from tests.samples.alerting import SECRET

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNT = "acc_e2e"
KEY = "key_e2e00001"
RULE = "rule_e2e_errors"


def _evaluator(worker: Worker) -> Evaluator:
    assert worker.alerting is not None and worker.alerting.evaluator is not None
    return worker.alerting.evaluator


def _counts(hook: HttpServer, slack: HttpServer, mail: MailSink) -> tuple[int, int, int]:
    return len(hook.received), len(slack.received), len(mail.messages)


async def test_breach_fires_once_per_channel_survives_restart_and_resolves_once(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    hook, hook_runner = await start_http_server()
    slack, slack_runner = await start_http_server()
    mail, smtp_port, smtp_server = await start_smtp()
    try:
        await _scenario(
            tmp_path, kafka_bootstrap, topics, topic_prefix, hook, slack, mail, smtp_port
        )
    finally:
        await hook_runner.cleanup()
        await slack_runner.cleanup()
        smtp_server.close()
        await smtp_server.wait_closed()


async def _scenario(
    tmp_path: Path,
    kafka_bootstrap: str,
    topics: TopicNames,
    topic_prefix: str,
    hook: HttpServer,
    slack: HttpServer,
    mail: MailSink,
    smtp_port: int,
) -> None:
    settings = alert_settings(tmp_path, kafka_bootstrap, topic_prefix, smtp_port)
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
                {"type": "webhook", "url": hook.url("/hook"), "secret": SECRET},
                {"type": "slack", "webhook_url": slack.url("/services/T0/B0/X")},
                {"type": "email", "to": ["ops@example.com"]},
            ],
        }
    )
    await asyncio.to_thread(alert_admin.check_rule_urls, rule, settings)
    await asyncio.to_thread(alert_admin.publish_rule, settings, rule)
    created = KeyCreated(
        key_id=KEY,
        account_id=ACCOUNT,
        name="Production server",
        key_type=KeyType.LIVE,
        secret_hash="sha256:" + "ab" * 32,
        plan=Plan.PRO,
    )
    produce(kafka_bootstrap, topics.key_events, [encode(created)], key=ACCOUNT.encode())
    fp = fingerprint(RULE, KEY)
    await away_from_minute_end()
    async with running_worker(settings) as worker:
        evaluator = _evaluator(worker)
        await wait_until(lambda: RULE in evaluator.rules, what="the rule")
        await asyncio.to_thread(
            record_traffic, kafka_bootstrap, topics.requests, KEY, ACCOUNT, [500] * 20
        )
        await wait_until(lambda: min(_counts(hook, slack, mail)) >= 1, what="a firing notification")
        await asyncio.sleep(1.5)  # several more cycles: nothing else may arrive
        assert _counts(hook, slack, mail) == (1, 1, 1)

    # Restart: the evaluator restores the firing instance and does not notify again.
    async with running_worker(settings) as worker:
        evaluator = _evaluator(worker)
        await wait_until(
            lambda: evaluator.stats.cycles >= 3,
            what="evaluator cycles after the restart",
        )
        states = {i.fingerprint: i.state for i in evaluator.instances()}
        assert states[fp] is AlertState.FIRING
        assert _counts(hook, slack, mail) == (1, 1, 1)

        await asyncio.to_thread(
            record_traffic, kafka_bootstrap, topics.requests, KEY, ACCOUNT, [200] * 60
        )
        await wait_until(
            lambda: min(_counts(hook, slack, mail)) >= 2, what="a resolved notification"
        )
        await asyncio.sleep(1.5)
        assert _counts(hook, slack, mail) == (2, 2, 2)

    webhook = Webhook(SECRET)
    firing, resolved = (webhook.verify(r.body, r.headers) for r in hook.received)
    assert (firing["type"], resolved["type"]) == ("alert.firing", "alert.resolved")
    assert firing["data"]["key"] == {"id": KEY, "name": "Production server"}
    assert firing["data"]["value"] == 100.0
    assert firing["data"]["threshold"] == 50.0
    assert resolved["data"]["ended_at"] is not None
    assert hook.received[0].headers["webhook-id"] == f"{fp}.1.firing"
    assert hook.received[1].headers["webhook-id"] == f"{fp}.1.resolved"

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
        history = ClickHouseAlertStateStore(client).history(fp)
        notified = [(h.to_state, h.notified) for h in history if h.notified]
        assert notified == [
            (AlertState.FIRING, NotificationKind.FIRING),
            (AlertState.RESOLVED, NotificationKind.RESOLVED),
        ]
        # Before any traffic the key-scoped rule saw no data: an explicit nodata state.
        assert history[0].to_state in (AlertState.NODATA, AlertState.FIRING)
        delivered = ClickHouseDeliveryLog(client).list_latest(["delivered"])
        assert len(delivered) == 6
    finally:
        client.close()
