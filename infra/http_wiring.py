"""Serving the HTTP API inside the worker (embedded mode: the worker owns chDB)."""

from __future__ import annotations

from faust.contrib.asgi import serve_asgi

from infra.api_alerts import alert_router_factory
from infra.clickhouse import make_client
from infra.client_pool import ClientPool
from infra.http_app import ApiRuntime, RouterFactory, build_http_app
from infra.metrics import MetricsSnapshot
from infra.settings import Settings
from infra.worker import Worker
from schemas.topics import TopicNames


def worker_snapshot(worker: Worker) -> MetricsSnapshot:
    ingest = worker.app.ingest
    snap = MetricsSnapshot()
    if ingest is not None:
        stats = ingest.stats
        snap.events_ingested = stats.events
        snap.dead_letters = stats.dead_letters
        snap.blocks_written = stats.blocks
        snap.last_batch_events = stats.last_block_events
        snap.insert_seconds = list(stats.insert_seconds)
    return snap


def serve_http_in_worker(
    worker: Worker, settings: Settings, routers: list[RouterFactory] | None = None
) -> ApiRuntime:
    """Build the API on a pool of clients owned by the worker and serve it with faust."""
    pool = ClientPool(lambda: make_client(settings), size=4)
    worker.clients.extend(pool.clients)
    runtime = ApiRuntime(
        pool=pool,
        topics=TopicNames.with_prefix(settings.kafka.topic_prefix),
        bootstrap_servers=settings.kafka.bootstrap_servers,
        snapshot=lambda: worker_snapshot(worker),
        extra_routers=[alert_router_factory(settings, pool), *(routers or [])],
    )
    api = build_http_app(settings, runtime)
    serve_asgi(
        worker.app.app,
        api,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        access_log=False,
    )
    return runtime
