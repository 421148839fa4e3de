"""The composition root: settings -> adapters -> the worker (agents, evaluator, notifier) and
the HTTP API, assembled once for both ways to run.

- `assemble_worker(settings)`: migrate, then wire the ClickHouse adapters, the ingest and
  key-registry agents and every alerting part into one faust app.
- `serve_http_in_worker(worker, settings)`: embedded mode, the worker serves the API.
- `build_api(settings, pool, snapshot, keys)`: the FastAPI app of both modes (`keypulse api`
  is server mode), with its key service (its own unless one is given);
  `worker_snapshot(worker)` feeds its `/metrics` and `/readyz`.
- `running_worker(settings)`: the worker inside the current event loop (demo, tools, tests).

One evaluator per deployment: set `KEYPULSE_ALERTING_EVALUATOR_ENABLED=false` on all but
one worker when running several.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from faust.contrib.asgi import serve_asgi

from alerting.agents import NotifierAgent, RulesAgent
from alerting.channels.email import EmailConfig, EmailNotifier
from alerting.channels.slack import SlackConfig, SlackNotifier
from alerting.channels.webhook import WebhookConfig, WebhookNotifier
from alerting.delivery import DeliveryScheduler
from alerting.evaluator import Evaluator, EvaluatorConfig
from alerting.notifier import ChannelRouter, Notifier, OpeningNotifier
from alerting.retry import RetryPolicy
from alerting.sealing import Keyring
from infra.alert_admin import Publisher
from infra.clickhouse import make_client, migration_context
from infra.http.app import build_http_app
from infra.http.client_pool import ClientPool
from infra.http.context import ApiRuntime, Snapshot, no_worker
from infra.http.metrics import MetricsSnapshot, consumer_lag
from infra.master_keys import KeyringSource, MasterKeyError, ensure_keyring
from infra.settings import AlertingSettings, Settings
from projections.alert_queries import ClickHouseEvaluationQueries
from projections.alert_store import (
    ClickHouseAlertStateStore,
    ClickHouseDeliveryLog,
    ClickHouseRuleStore,
)
from projections.attribution import ClickHouseAttributionStore
from projections.migrate import migrate
from projections.transient import clickhouse_transient
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.alerts import Notification
from schemas.codec import encode
from schemas.topics import TopicNames
from streams.keyservice.service import KeyService
from streams.worker.app import KeypulseApp, WorkerServices, build_app
from streams.worker.attribution_agent import AttributionAgent
from streams.worker.config import StreamsConfig

log = logging.getLogger(__name__)


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


def worker_keyring(settings: Settings) -> Callable[[], Keyring | None]:
    """The notifier's keyring: re-read when its file changes; a keyring that cannot be
    read is logged (the deliveries that need it fail saying a master key is missing)."""
    source = KeyringSource(settings)

    def current() -> Keyring | None:
        try:
            return source()
        except MasterKeyError as exc:
            log.error("channel secrets cannot be opened: %s", exc)
            return None

    return current


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
    dead_letters = BoundTopic(topics.dead_letters)
    notifications = BoundTopic(topics.notifications)
    clients: list[Client] = []

    def client() -> Client:
        c = new_client()
        clients.append(c)
        return c

    rules_client = client()
    rules_agent = RulesAgent(
        topics.alert_rules,
        ClickHouseRuleStore(rules_client),
        dead_letters,
        transient=clickhouse_transient,
    )
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
                transient=clickhouse_transient,
            ),
            end_offsets=parts.requests_end_offsets,
        )
        rules_agent.listeners.append(parts.evaluator.apply_rule_changes)
    if cfg.notifier_enabled:
        ensure_keyring(settings)
        parts.scheduler = DeliveryScheduler(
            OpeningNotifier(channel_router(cfg), worker_keyring(settings)),
            ClickHouseDeliveryLog(client()),
            retry_policy(cfg),
            max_concurrent=cfg.max_concurrent_deliveries,
            transient=clickhouse_transient,
        )
        parts.notifier = NotifierAgent(topics.notifications, parts.scheduler, dead_letters)
    return parts


def streams_config(settings: Settings) -> StreamsConfig:
    return StreamsConfig(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        app_id=settings.kafka.consumer_group,
        topics=TopicNames.with_prefix(settings.kafka.topic_prefix),
        data_dir=settings.data_dir,
        batch_max_messages=settings.worker.batch_max_messages,
        batch_max_events=settings.worker.batch_max_events,
        batch_max_ms=settings.worker.batch_max_ms,
        max_message_bytes=settings.worker.max_message_bytes,
        max_future_s=settings.worker.max_future_s,
        raw_ttl_days=settings.clickhouse.raw_ttl_days,
        session_timeout_s=settings.kafka.session_timeout_s,
        fault_kill_after_blocks=settings.worker.fault_kill_after_blocks,
        web_enabled=settings.api.serve_in_worker,
    )


@dataclass
class Worker:
    """Everything one worker process owns; `close()` releases the ClickHouse clients."""

    app: KeypulseApp
    clients: list[Client]
    alerting: AlertingParts | None = None
    api: ApiRuntime | None = None
    """The HTTP API's runtime when this worker serves it (embedded mode)."""
    attribution: AttributionAgent | None = None
    """Counts and records landed request events the registry attributes to no account."""

    def close(self) -> None:
        if self.app.ingest:
            self.app.ingest.close()
        if self.attribution is not None:
            self.attribution.close()
        if self.app.keys:
            self.app.keys.close()
        if self.alerting is not None:
            self.alerting.close()
        for client in self.clients:
            client.close()


def assemble_worker(settings: Settings) -> Worker:
    """Migrate, then wire ClickHouse adapters into the faust app."""
    admin = make_client(settings)
    migrate(admin, migration_context(settings))
    ingest_client = make_client(settings)
    keys_client = make_client(settings)
    config = streams_config(settings)
    alerting = build_alerting(settings, config.topics, lambda: make_client(settings))
    attribution_client = make_client(settings)
    attribution = AttributionAgent(
        ClickHouseAttributionStore(attribution_client),
        grace_s=settings.worker.attribution_grace_s,
        interval_s=min(5.0, settings.worker.attribution_grace_s / 2),
        transient=clickhouse_transient,
    )
    services = WorkerServices(
        ingest_store=ClickHouseIngestStore(ingest_client),
        key_store=ClickHouseKeyStore(keys_client),
        store_transient=clickhouse_transient,
        extra_agents=[alerting.register, lambda app: app.task(attribution.run)],
    )
    app = build_app(config, services)
    if app.ingest is not None:
        alerting.attach_ingest(app.ingest.listeners)
    clients = [admin, ingest_client, keys_client, attribution_client, *alerting.clients]
    return Worker(app=app, clients=clients, alerting=alerting, attribution=attribution)


async def worker_snapshot(worker: Worker) -> MetricsSnapshot:
    """The worker's counters: ingest, evaluator and delivery stats, and the consumer lag
    (the broker's end offsets of this worker's request partitions vs the ingest
    watermarks; None when they cannot be read)."""
    snap = MetricsSnapshot()
    ingest = worker.app.ingest
    if ingest is not None:
        stats = ingest.stats
        snap.events_ingested = stats.events
        snap.dead_letters = stats.dead_letters
        snap.blocks_written = stats.blocks
        snap.last_batch_events = stats.last_block_events
        snap.insert_seconds = list(stats.insert_seconds)
    if worker.attribution is not None:
        snap.unattributed_events = dict(worker.attribution.stats.events_by_reason)
    if worker.alerting is not None:
        _alerting_counts(snap, worker.alerting)
        if ingest is not None:
            snap.consumer_lag = await _consumer_lag(worker.alerting, ingest.watermarks)
    return snap


def _alerting_counts(snap: MetricsSnapshot, alerting: AlertingParts) -> None:
    if alerting.evaluator is not None:
        stats = alerting.evaluator.stats
        snap.eval_cycles = stats.cycles
        snap.eval_failed_cycles = stats.failed_cycles
        snap.eval_cycle_seconds = [ms / 1000 for ms in stats.cycle_ms]
    if alerting.scheduler is not None:
        snap.deliveries_by_outcome = dict(alerting.scheduler.stats.by_outcome)


async def _consumer_lag(alerting: AlertingParts, watermarks: dict[int, int]) -> int | None:
    try:
        ends = await alerting.requests_end_offsets()
    except Exception as exc:  # the consumer is not started or the broker did not answer
        log.debug("consumer lag unknown: %s", exc)
        return None
    return None if ends is None else consumer_lag(ends, watermarks)


def build_api(
    settings: Settings,
    pool: ClientPool,
    snapshot: Snapshot = no_worker,
    keys: KeyService | None = None,
) -> tuple[FastAPI, ApiRuntime]:
    """The FastAPI app of both modes, reading through `pool`, and its runtime (whose
    publisher the app closes at shutdown). Without `keys` the app starts its own key
    service on the key-events topic when it starts, and closes it at shutdown."""
    runtime = ApiRuntime(
        pool=pool,
        topics=TopicNames.with_prefix(settings.kafka.topic_prefix),
        bootstrap_servers=settings.kafka.bootstrap_servers,
        snapshot=snapshot,
        publisher=Publisher(settings),
        keys=keys,
    )
    return build_http_app(settings, runtime), runtime


def serve_http_in_worker(worker: Worker, settings: Settings) -> ApiRuntime:
    """Embedded mode: the API on a pool of clients owned by the worker, served by faust
    (uvicorn runs the app's lifespan, so the app's key service starts with it and the
    key service and the publisher close when the worker stops)."""
    pool = ClientPool(lambda: make_client(settings), size=4)
    worker.clients.extend(pool.clients)
    api, runtime = build_api(settings, pool, lambda: worker_snapshot(worker))
    serve_asgi(
        worker.app.app,
        api,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the peer is the client: no X-Forwarded-For is trusted
    )
    worker.api = runtime
    return runtime


@asynccontextmanager
async def running_worker(settings: Settings, serve_http: bool = False) -> AsyncIterator[Worker]:
    """Start the agents in this loop; stop them and release ClickHouse on exit.

    With `serve_http` the HTTP API is served too, on `settings.api.host:port`.
    """
    if not serve_http:
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"serve_in_worker": False})}
        )
    worker = assemble_worker(settings)
    if serve_http:
        serve_http_in_worker(worker, settings)
    faust_app = worker.app.app
    try:
        await faust_app.start()
        yield worker
    finally:
        await faust_app.stop()
        worker.close()
