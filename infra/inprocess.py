"""Run the worker's faust app inside the current event loop (self-check, tests, demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from infra.settings import Settings
from infra.worker import Worker, assemble_worker


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
        from infra.http_wiring import serve_http_in_worker

        serve_http_in_worker(worker, settings)
    faust_app = worker.app.app
    try:
        await faust_app.start()
        yield worker
    finally:
        await faust_app.stop()
        worker.close()
