"""Support for the HTTP API tests: management keys of two accounts, a worker serving the
API on a free port, problem-body checks and the usage truth computed from the events."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from infra.http.auth import hash_secret
from infra.settings import ApiSettings, ManagementKey, Settings
from infra.tools.receivers import free_port
from infra.wiring import Worker, running_worker
from projections.windows import Window
from schemas.requests import RequestCompleted
from tests.eventually import eventually

ALPHA, BETA = "acc_alpha", "acc_beta"
SECRETS = {
    "alpha_full": "alpha-full-secret",
    "alpha_ro": "alpha-read-only-secret",
    "alpha_revoked": "alpha-revoked-secret",
    "beta_full": "beta-full-secret",
}
OPS_PATHS = {"/healthz", "/readyz", "/metrics"}


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
    """`settings` with the API on a free local port and the test's management keys."""
    api = ApiSettings(port=free_port(), management_keys=management_keys())
    return settings.model_copy(update={"api": api})


@dataclass
class Api:
    client: httpx.AsyncClient
    worker: Worker
    settings: Settings

    @staticmethod
    def auth(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {SECRETS[who]}"}


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Api]:
    """A worker serving the API (`serving_settings`), once `/healthz` answers."""
    async with running_worker(settings, serve_http=True) as worker:
        base = f"http://127.0.0.1:{settings.api.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, 30, "the HTTP API to answer /healthz")
            yield Api(client, worker, settings)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    """An error answer: the status, a problem+json body, no account data in it."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code:
        assert body["error"] == code
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
