"""Composition of alerting inside the worker: adapters, agents, evaluator, channels.

`build_alerting(settings, topics, new_client)` builds every part with its own ClickHouse
client; `AlertingParts.register` is a `WorkerServices.extra_agents` hook that binds the
Kafka topics and adds the rules agent, the notifier agent and the evaluator task to the
faust app; `attach_ingest` makes landed ingest blocks wake the evaluator.

One evaluator per deployment: set `KEYPULSE_ALERTING_EVALUATOR_ENABLED=false` on all but
one worker when running several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from alerting.agents import NotifierAgent, RulesAgent
from alerting.channels.email import EmailConfig, EmailNotifier
from alerting.channels.slack import SlackConfig, SlackNotifier
from alerting.channels.webhook import WebhookConfig, WebhookNotifier
from alerting.codec import encode
from alerting.delivery import DeliveryScheduler
from alerting.evaluator import Evaluator, EvaluatorConfig
from alerting.notifier import ChannelRouter, Notifier
from alerting.retry import RetryPolicy
from infra.settings import AlertingSettings, Settings
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.alert_store import (
    ClickHouseAlertStateStore,
    ClickHouseDeliveryLog,
    ClickHouseRuleStore,
)
from schemas.alerts import Notification
from schemas.topics import TopicNames


class BoundTopic:
    """A faust topic bound at registration; sends return once the broker acknowledged."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._topic: Any = None

    def bind(self, app: Any) -> None:
        self._topic = app.topic(self.name, key_type=bytes, value_type=bytes)

    async def send(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        if self._topic is None:
            raise RuntimeError(f"topic {self.name} is not bound to an app")
        pending = await self._topic.send(key=key, value=value, headers=headers, force=True)
        await pending

    async def publish(self, notifications: Sequence[Notification]) -> None:
        """Send every notification keyed by fingerprint; wait for all acknowledgements."""
        if self._topic is None:
            raise RuntimeError(f"topic {self.name} is not bound to an app")
        pending = [
            await self._topic.send(key=n.fingerprint.encode(), value=encode(n), force=True)
            for n in notifications
        ]
        await asyncio.gather(*pending)


def retry_policy(settings: AlertingSettings) -> RetryPolicy:
    return RetryPolicy(
        fast_delays_s=tuple(settings.retry_fast_delays_s),
        give_up_after_s=settings.retry_give_up_after_s,
    )


def channel_router(settings: AlertingSettings) -> ChannelRouter:
    """The real channels, configured from the settings (email only with an SMTP host)."""
    notifiers: dict[str, Notifier] = {
        "webhook": WebhookNotifier(
            WebhookConfig(
                timeout_s=settings.webhook_timeout_s,
                allow_loopback=settings.allow_loopback_webhooks,
                ca_file=settings.webhook_ca_file,
            )
        ),
        "slack": SlackNotifier(
            SlackConfig(
                api_base_url=settings.slack_api_base_url,
                allowed_webhook_hosts=frozenset(
                    h.lower() for h in settings.slack_allowed_webhook_hosts
                ),
            )
        ),
    }
    if settings.smtp_host:
        notifiers["email"] = EmailNotifier(
            EmailConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=settings.smtp_password,
                sender=settings.smtp_sender,
                timeout_s=settings.smtp_timeout_s,
                ca_file=settings.smtp_ca_file,
            )
        )
    return ChannelRouter(notifiers)


@dataclass
class AlertingParts:
    topics: TopicNames
    rules_agent: RulesAgent
    evaluator: Evaluator | None
    notifier: NotifierAgent | None
    scheduler: DeliveryScheduler | None
    dead_letters: BoundTopic
    notifications: BoundTopic
    clients: list[Client] = field(default_factory=list)
    _app: Any = None

    def register(self, app: Any) -> None:
        """`WorkerServices.extra_agents` hook: topics, agents and the evaluator task."""
        self._app = app
        self.dead_letters.bind(app)
        self.notifications.bind(app)
        rules_topic = app.topic(self.topics.alert_rules, key_type=bytes, value_type=bytes)
        app.agent(rules_topic, name="keypulse.alert-rules", concurrency=1)(self.rules_agent.run)
        if self.notifier is not None:
            topic = app.topic(self.topics.notifications, key_type=bytes, value_type=bytes)
            app.agent(topic, name="keypulse.notifier", concurrency=1)(self.notifier.run)
        if self.evaluator is not None:
            app.task(self.evaluator.run)

    async def requests_end_offsets(self) -> dict[int, int] | None:
        """End offsets of the requests partitions this worker consumes (from the broker)."""
        app = self._app
        if app is None:
            return None
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.topics.requests]
        if not tps:
            return None
        ends = await consumer.highwaters(*tps)
        return {tp.partition: int(end) for tp, end in ends.items()}

    def attach_ingest(self, listeners: list[Callable[[Any], None]]) -> None:
        """Wake the evaluator whenever an ingest block lands."""
        if self.evaluator is not None:
            listeners.append(self.evaluator.on_block)

    def close(self) -> None:
        self.rules_agent.close()
        if self.evaluator is not None:
            self.evaluator.close()
        if self.scheduler is not None:
            self.scheduler.close()


def build_alerting(
    settings: Settings, topics: TopicNames, new_client: Callable[[], Client]
) -> AlertingParts:
    """Every alerting part, each with its own ClickHouse client (closed by the caller)."""
    cfg = settings.alerting
    dead_letters = BoundTopic(topics.requests_dlq)
    notifications = BoundTopic(topics.notifications)
    clients: list[Client] = []

    def client() -> Client:
        c = new_client()
        clients.append(c)
        return c

    rules_client = client()
    rules_agent = RulesAgent(topics.alert_rules, ClickHouseRuleStore(rules_client), dead_letters)
    parts = AlertingParts(
        topics=topics,
        rules_agent=rules_agent,
        evaluator=None,
        notifier=None,
        scheduler=None,
        dead_letters=dead_letters,
        notifications=notifications,
        clients=clients,
    )
    if cfg.evaluator_enabled:
        eval_client = client()
        parts.evaluator = Evaluator(
            ClickHouseEvaluationQueries(eval_client, topics.requests),
            ClickHouseRuleStore(eval_client),
            ClickHouseAlertStateStore(eval_client),
            notifications,
            EvaluatorConfig(
                interval_s=cfg.eval_interval_s,
                min_gap_s=cfg.eval_min_gap_s,
                idle_advance_s=cfg.idle_advance_s,
            ),
            end_offsets=parts.requests_end_offsets,
        )
        rules_agent.listeners.append(parts.evaluator.apply_rule_changes)
    if cfg.notifier_enabled:
        parts.scheduler = DeliveryScheduler(
            channel_router(cfg),
            ClickHouseDeliveryLog(client()),
            retry_policy(cfg),
            max_concurrent=cfg.max_concurrent_deliveries,
        )
        parts.notifier = NotifierAgent(topics.notifications, parts.scheduler, dead_letters)
    return parts
