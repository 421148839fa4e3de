"""The CLI's one read path: the worker's HTTP API while a worker runs, else ClickHouse.

While a worker runs it owns the chDB directory, so the CLI asks its HTTP API
(authenticating with `KEYPULSE_API_TOKEN`, whose key decides the account). With no
worker answering on `KEYPULSE_API_HOST:PORT`, the CLI opens ClickHouse itself; there
the account is the `--account` option (required for keys and usage, optional for rules
and deliveries, where None means every account).

Both backends answer with the API's JSON shapes (the routes' response models), so a
command prints the same either way. `replay_delivery` is the one write here: it needs
the delivery's notification, which only ClickHouse or the API can read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
from clickhouse_connect.driver.client import Client

from infra.alert_admin import publish_replay
from infra.clickhouse import make_client
from infra.http.routes.deliveries import DeliveryOut
from infra.http.routes.keys import KeyOut
from infra.http.routes.rules import StoredRuleOut
from infra.http.routes.usage import UsageOut
from infra.settings import Settings
from projections.alert_store import ClickHouseDeliveryLog, ClickHouseRuleStore
from projections.queries import UsageQueries
from projections.windows import Window
from schemas.utc import utc_now

Json = dict[str, Any]


class ReadError(Exception):
    """A read command cannot be answered; one clear line."""


class ReadBackend(Protocol):
    def list_keys(self, account_id: str | None) -> list[Json]: ...

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> Json: ...

    def list_rules(self, account_id: str | None) -> list[Json]: ...

    def get_rule(self, rule_id: str) -> Json:
        """The rule (`StoredRuleOut`); `ReadError` when there is none."""
        ...

    def list_deliveries(
        self, account_id: str | None, status: str | None, limit: int
    ) -> list[Json]: ...

    def replay_delivery(self, delivery_id: str) -> str:
        """Queue the delivery's notification again; one line saying what happened."""
        ...

    def close(self) -> None: ...


class DirectBackend:
    """Reads ClickHouse through the same adapters and response models as the API."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client = make_client(settings)
        self._queries = UsageQueries(self._client)

    @staticmethod
    def _account(account_id: str | None) -> str:
        if not account_id:
            raise ReadError("--account is required when reading ClickHouse directly")
        return account_id

    def list_keys(self, account_id: str | None) -> list[Json]:
        rows = self._queries.list_keys(self._account(account_id), utc_now())
        return [KeyOut.of(r).model_dump(mode="json") for r in rows]

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> Json:
        account = self._account(account_id)
        if self._queries.get_key(account, key_id, utc_now()) is None:
            raise ReadError(f"no key {key_id} in account {account}")
        usage = self._queries.key_usage(account, key_id, window, utc_now())
        return UsageOut.of(usage, window, key_id).model_dump(mode="json")

    def list_rules(self, account_id: str | None) -> list[Json]:
        rules = ClickHouseRuleStore(self._client).list_rules(account_id)
        return [StoredRuleOut.stored(r).model_dump(mode="json") for r in rules]

    def get_rule(self, rule_id: str) -> Json:
        stored = ClickHouseRuleStore(self._client).get_rule(rule_id)
        if stored is None:
            raise ReadError(f"no alert rule {rule_id}")
        return StoredRuleOut.stored(stored).model_dump(mode="json")

    def list_deliveries(self, account_id: str | None, status: str | None, limit: int) -> list[Json]:
        statuses = [status] if status else None
        found = ClickHouseDeliveryLog(self._client).list_latest(statuses, limit, account_id)
        return [DeliveryOut.of(r).model_dump(mode="json") for r in found]

    def replay_delivery(self, delivery_id: str) -> str:
        record = ClickHouseDeliveryLog(self._client).get(delivery_id)
        if record is None:
            raise ReadError(f"no delivery {delivery_id}")
        done = publish_replay(self._settings, record.notification, delivery_id)
        return (
            f"replay of {delivery_id} ({record.status}) queued on {done.topic} "
            f"partition {done.partition} offset {done.offset}"
        )

    def close(self) -> None:
        self._client.close()


class HttpBackend:
    """Asks the running worker's HTTP API (the token's account is the one answered)."""

    def __init__(self, base_url: str, token: str) -> None:
        if not token:
            raise ReadError(
                "a worker is running and owns the data; set KEYPULSE_API_TOKEN to a "
                "management key to read through its HTTP API"
            )
        self._base_url = base_url
        self._http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def _call(self, method: str, path: str, **params: str | int) -> Any:
        try:
            response = self._http.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise ReadError(f"the worker's HTTP API at {self._base_url} failed: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ReadError(f"HTTP {response.status_code}: {detail}")
        return response.json()

    def list_keys(self, account_id: str | None) -> list[Json]:
        data: list[Json] = self._call("GET", "/api-keys")["data"]
        return data

    def key_usage(self, account_id: str | None, key_id: str, window: Window) -> Json:
        result: Json = self._call("GET", f"/api-keys/{key_id}/usage", window=window.value)
        return result

    def list_rules(self, account_id: str | None) -> list[Json]:
        data: list[Json] = self._call("GET", "/alert-rules")["data"]
        return data

    def get_rule(self, rule_id: str) -> Json:
        result: Json = self._call("GET", f"/alert-rules/{rule_id}")
        return result

    def list_deliveries(self, account_id: str | None, status: str | None, limit: int) -> list[Json]:
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        data: list[Json] = self._call("GET", "/deliveries", **params)["data"]
        return data

    def replay_delivery(self, delivery_id: str) -> str:
        self._call("POST", f"/deliveries/{delivery_id}/replay")
        return f"replay of {delivery_id} accepted by the worker at {self._base_url}"

    def close(self) -> None:
        self._http.close()


def api_running(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def open_backend(settings: Settings) -> ReadBackend:
    """The worker's API when one answers at `KEYPULSE_API_HOST:PORT`, else ClickHouse."""
    base_url = f"http://{settings.api.host}:{settings.api.port}"
    if api_running(base_url):
        return HttpBackend(base_url, settings.api.token.get_secret_value())
    return DirectBackend(settings)


@contextmanager
def reading(settings: Settings) -> Iterator[ReadBackend]:
    """`open_backend`, closed on exit."""
    backend = open_backend(settings)
    try:
        yield backend
    finally:
        backend.close()
