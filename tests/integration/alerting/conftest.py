"""Fixtures for the alerting integration tests (real local servers, no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from schemas.alerts import Notification
from tests.integration.alerting.alert_servers import (
    HttpServer,
    TlsFiles,
    make_tls_files,
    start_http_server,
)
from tests.samples.alerting import make_notification


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def notification() -> Callable[..., Notification]:
    return make_notification


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    server, runner = await start_http_server()
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def https_server(tls_files: TlsFiles) -> AsyncIterator[HttpServer]:
    server, runner = await start_http_server(tls_files.server_context())
    try:
        yield server
    finally:
        await runner.cleanup()
