"""Support for the HTTP API tests: the keys of two accounts (registry keys of every access
level, and the operator bootstrap keys of the settings), a worker serving the API on a
free port, the app alone under uvicorn (`live_api`), problem-body checks and the usage
truth computed from the events."""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from infra.clickhouse import make_client, migration_context
from infra.http.client_pool import ClientPool
from infra.http.context import ApiRuntime
from infra.settings import ApiSettings, ManagementKey, Settings
from infra.tools.receivers import free_port
from infra.wiring import Worker, build_api, running_worker
from projections.migrate import migrate
from projections.windows import Window
from schemas.key_format import hash_secret
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from schemas.requests import RequestCompleted
from streams.keyservice.commands import CreateAccount, CreateKey, RevokeKey
from streams.keyservice.service import KeyService
from tests.eventually import eventually, eventually_sync
from tests.samples.keys import Chain

ALPHA, BETA = "acc_alpha", "acc_beta"
SECRETS = {
    "alpha_full": "alpha-full-secret",
    "alpha_ro": "alpha-read-only-secret",
    "alpha_revoked": "alpha-revoked-secret",
    "beta_full": "beta-full-secret",
}
"""Secrets of the operator bootstrap keys (`KEYPULSE_API_MANAGEMENT_KEYS`): `full` acts as
an admin key, `read_only` as a read-only key."""
OPS_PATHS = {"/healthz", "/readyz", "/metrics", "/verify", "/secret-scanning/github"}
"""Routes outside the management keys' access matrix: probes, metrics, `/verify` (a
service credential; every management key is refused there, see test_verify.py) and the
secret-scanning report (its signature is its credential; test_secret_scanning.py)."""

ROLES = {
    "admin": KeyAccess.ADMIN,
    "read_only": KeyAccess.READ_ONLY,
    "full": KeyAccess.FULL,
    "revoked": KeyAccess.ADMIN,
}
"""The registry keys each test account gets: one per access level, and a revoked admin key."""


def management_keys() -> list[ManagementKey]:
    def key(key_id: str, account: str, scope: str, secret: str, **extra: Any) -> ManagementKey:
        return ManagementKey.model_validate(
            {
                "key_id": key_id,
                "account_id": account,
                "scope": scope,
                "secret_hash": hash_secret(SECRETS[secret]),
                **extra,
            }
        )

    return [
        key("mk_alphafull", ALPHA, "full", "alpha_full"),
        key("mk_alpharo", ALPHA, "read_only", "alpha_ro"),
        key("mk_alpharev", ALPHA, "full", "alpha_revoked", revoked=True),
        key("mk_betafull", BETA, "full", "beta_full"),
    ]


def serving_settings(settings: Settings) -> Settings:
    """`settings` with the API on a free local port and the test's bootstrap keys."""
    api = ApiSettings(port=free_port(), management_keys=management_keys())
    return settings.model_copy(update={"api": api})


# --------------------------------------------------------------------------- registry keys


@dataclass
class Tenant:
    """An account and its registry keys: `keys[role] = (key_id, secret)`."""

    account_id: str
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def secrets(self) -> dict[str, str]:
        """`"<account short name>:<role>" -> secret`, e.g. `alpha:admin`."""
        short = self.account_id.removeprefix("acc_")
        return {f"{short}:{role}": secret for role, (_, secret) in self.keys.items()}


def role_chain(account_id: str, roles: Sequence[str], plan: Plan = Plan.ENTERPRISE) -> Chain:
    """A valid event chain: the account and one live key per role (`revoked` revoked);
    key ids are `key_<account><role>`."""
    chain = Chain(account_id, plan)
    short = account_id.removeprefix("acc_")
    for role in roles:
        key_id = f"key_{short}{role.replace('_', '')}"
        chain.create_key(key_id, f"name of {role}", KeyType.LIVE, ROLES[role])
        if role == "revoked":
            chain.revoke(key_id)
    return chain


def chain_tenant(chain: Chain, roles: Sequence[str]) -> Tenant:
    short = chain.account_id.removeprefix("acc_")
    tenant = Tenant(chain.account_id)
    for role in roles:
        key_id = f"key_{short}{role.replace('_', '')}"
        tenant.keys[role] = (key_id, chain.secrets[key_id])
    return tenant


def create_tenant(
    service: KeyService, account_id: str, roles: Sequence[str], plan: Plan = Plan.ENTERPRISE
) -> Tenant:
    """The account and one live key per role, made through the key service."""
    service.execute(CreateAccount(account_id, plan), actor="test-setup")
    tenant = Tenant(account_id)
    for role in roles:
        command = CreateKey(account_id, f"name of {role}", KeyType.LIVE, ROLES[role])
        outcome = service.execute(command, actor="test-setup")
        key_id, secret = outcome.decision.key_id, outcome.decision.secret
        assert key_id is not None and secret is not None
        if role == "revoked":
            service.execute(RevokeKey(account_id, key_id), actor="test-setup")
        tenant.keys[role] = (key_id, secret)
    return tenant


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --------------------------------------------------------------------------- serving


@dataclass
class Api:
    client: httpx.AsyncClient
    worker: Worker
    settings: Settings
    secrets: dict[str, str]
    """Registry key secrets by `"<account>:<role>"` (`Tenant.secrets`)."""

    def auth(self, who: str) -> dict[str, str]:
        """The header of a bootstrap key (`SECRETS`) or a registry key (`secrets`)."""
        return bearer(SECRETS[who] if who in SECRETS else self.secrets[who])


@asynccontextmanager
async def serving(settings: Settings, secrets: dict[str, str] | None = None) -> AsyncIterator[Api]:
    """A worker serving the API (`serving_settings`), once `/readyz` says the key
    registry is loaded."""
    async with running_worker(settings, serve_http=True) as worker:
        base = f"http://127.0.0.1:{settings.api.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def registry_ready() -> bool:
                try:
                    return bool((await client.get("/readyz")).json()["key_registry"])
                except httpx.TransportError:
                    return False

            await eventually(registry_ready, 60, "the HTTP API's key registry")
            yield Api(client, worker, settings, dict(secrets or {}))


@dataclass
class LiveApi:
    """The app alone (no worker) under uvicorn in a thread of this process."""

    base_url: str
    app: FastAPI
    runtime: ApiRuntime
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


def migrated(settings: Settings) -> None:
    client = make_client(settings)
    try:
        migrate(client, migration_context(settings))
    finally:
        client.close()


@contextmanager
def live_api(settings: Settings, registry_ready: bool = True) -> Iterator[LiveApi]:
    """`build_api` over `settings`' chDB (migrated first), served on `settings.api.port`
    with its lifespan (its own key service), once `/readyz` says the registry is loaded
    (with `registry_ready=False`: once `/healthz` answers)."""
    migrated(settings)
    pool = ClientPool(lambda: make_client(settings), size=2)
    app, runtime = build_api(settings, pool)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.api.port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    live = LiveApi(f"http://127.0.0.1:{settings.api.port}", app, runtime, settings)
    try:
        with live.client() as client:

            def answers() -> bool:
                try:
                    if not registry_ready:
                        return client.get("/healthz").status_code == 200
                    return bool(client.get("/readyz").json()["key_registry"])
                except httpx.TransportError:
                    return False

            eventually_sync(answers, 60, "the HTTP API (and its key registry)")
        yield live
    finally:
        server.should_exit = True
        thread.join(30)
        for ch in pool.clients:
            ch.close()


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    """An error answer: the status, a problem+json body, no account data in it."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code:
        assert body["error"] == code, body
    assert "data" not in body
    assert "name of" not in response.text  # no key names (account data) in an error


# --------------------------------------------------------------------------- usage truth


def in_window(event: RequestCompleted, window: Window, now: datetime) -> bool:
    """The test's traffic keeps well clear of window edges, so age alone decides."""
    return now - event.occurred_at < window.length


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class UsageTruth:
    requests: int
    errors_4xx: int
    errors_5xx: int
    renders: int
    bytes_out: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return (self.errors_4xx + self.errors_5xx) / self.requests if self.requests else 0.0


def usage_truth(events: Sequence[RequestCompleted]) -> UsageTruth:
    """Counters of `events` computed here, independently of the code under test."""
    latencies = [e.latency_ms for e in events]
    return UsageTruth(
        requests=len(events),
        errors_4xx=sum(1 for e in events if 400 <= e.status < 500),
        errors_5xx=sum(1 for e in events if e.status >= 500),
        renders=sum(1 for e in events if e.is_render),
        bytes_out=sum(e.bytes_out for e in events),
        p95_ms=nearest_rank(latencies, 0.95) if latencies else None,
    )
