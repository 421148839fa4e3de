"""The `backend` fixture: every contract test runs once per implementation of the ports."""

from __future__ import annotations

import pytest

from tests.contract.backends import Backend, ClickHouseBackend, MemoryBackend


@pytest.fixture(params=["memory", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    return ClickHouseBackend(request.getfixturevalue("migrated_client"))
