"""Where the CLI's read commands get answers: the worker's HTTP API, or chDB directly.

While a worker runs it owns the chDB directory, so the CLI asks its HTTP API
(authenticating with `KEYPULSE_API_TOKEN`). With no worker running, the CLI opens
ClickHouse itself. Both return the API's JSON shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from infra.clickhouse import make_client
from infra.http.routes.usage import KeyOut, UsageOut
from infra.settings import Settings
from projections.queries import UsageQueries
from projections.windows import Window


class ReadError(Exception):
    """A read command cannot be answered; one clear line."""


class ReadBackend(Protocol):
    def list_keys(self, account_id: str | None) -> list[dict[str, Any]]: ...

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> dict[str, Any]: ...

    def close(self) -> None: ...


class DirectBackend:
    def __init__(self, settings: Settings) -> None:
        self._client = make_client(settings)
        self._queries = UsageQueries(self._client)

    @staticmethod
    def _account(account_id: str | None) -> str:
        if not account_id:
            raise ReadError("--account is required when reading ClickHouse directly")
        return account_id

    def list_keys(self, account_id: str | None) -> list[dict[str, Any]]:
        rows = self._queries.list_keys(self._account(account_id), datetime.now(UTC))
        return [KeyOut.of(r).model_dump(mode="json") for r in rows]

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> dict[str, Any]:
        account = self._account(account_id)
        if self._queries.get_key(account, key_id, datetime.now(UTC)) is None:
            raise ReadError(f"no key {key_id} in account {account}")
        usage = self._queries.key_usage(account, key_id, window, datetime.now(UTC))
        return UsageOut.of(usage, window, key_id).model_dump(mode="json")

    def close(self) -> None:
        self._client.close()


class HttpBackend:
    def __init__(self, base_url: str, token: str) -> None:
        if not token:
            raise ReadError(
                "a worker is running and owns the data; set KEYPULSE_API_TOKEN to a "
                "management key to read through its HTTP API"
            )
        self._http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def _get(self, path: str, **params: str) -> Any:
        response = self._http.get(path, params=params)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ReadError(f"HTTP {response.status_code}: {detail}")
        return response.json()

    def list_keys(self, account_id: str | None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/api-keys")["data"]
        return data

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/api-keys/{key_id}/usage", window=window.value)
        return result

    def close(self) -> None:
        self._http.close()


def api_running(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def open_backend(settings: Settings) -> ReadBackend:
    base_url = f"http://{settings.api.host}:{settings.api.port}"
    if api_running(base_url):
        return HttpBackend(base_url, settings.api.token.get_secret_value())
    return DirectBackend(settings)
