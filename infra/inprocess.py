"""Run the worker's faust app inside the current event loop (self-check, tests, demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from infra.settings import Settings
from infra.worker import Worker, assemble_worker


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Start the agents in this loop; stop them and release ClickHouse on exit."""
    worker = assemble_worker(settings)
    faust_app = worker.app.app
    try:
        await faust_app.start()
        yield worker
    finally:
        await faust_app.stop()
        worker.close()
