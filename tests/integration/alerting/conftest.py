"""Fixtures for the alerting integration tests (real local servers, no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from infra.tools.receivers import HttpReceiver, serving_http
from schemas.alerts import Notification
from tests.integration.alerting.tls import TlsFiles, make_tls_files
from tests.samples.alerting import make_notification


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def notification() -> Callable[..., Notification]:
    return make_notification


@pytest.fixture
async def http_server() -> AsyncIterator[HttpReceiver]:
    async with serving_http() as server:
        yield server


@pytest.fixture
async def https_server(tls_files: TlsFiles) -> AsyncIterator[HttpReceiver]:
    async with serving_http(tls_files.server_context()) as server:
        yield server
