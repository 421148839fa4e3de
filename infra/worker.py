"""Composition of the worker: settings -> adapters -> faust app (+ services, alerting)."""

from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from infra.alerting_wiring import AlertingParts, build_alerting
from infra.clickhouse import make_client, migration_context
from infra.settings import Settings
from projections.migrate import migrate
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.topics import TopicNames
from streams.app import KeypulseApp, WorkerServices, build_app
from streams.config import StreamsConfig


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

    def close(self) -> None:
        if self.app.ingest:
            self.app.ingest.close()
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
    services = WorkerServices(
        ingest_store=ClickHouseIngestStore(ingest_client),
        key_store=ClickHouseKeyStore(keys_client),
        extra_agents=[alerting.register],
    )
    app = build_app(config, services)
    if app.ingest is not None:
        alerting.attach_ingest(app.ingest.listeners)
    clients = [admin, ingest_client, keys_client, *alerting.clients]
    return Worker(app=app, clients=clients, alerting=alerting)
