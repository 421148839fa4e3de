"""The HTTP API: a FastAPI app assembled from the packages' routers, with auth.

`build_http_app(settings, runtime)` is the only constructor; in embedded mode the worker
serves it (faust's ASGI service), in server mode `keypulse api` runs it alone.
Errors are `application/problem+json`; responses carry `X-Data-Freshness-Seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.http.auth import Authenticator, AuthError, Caller
from infra.http.client_pool import ClientPool
from infra.http.metrics import MetricsSnapshot, metrics_registry, render
from infra.http.routes.usage import usage_router
from infra.kafka.probe import broker_ready
from infra.settings import Settings
from schemas.topics import TopicNames

PROBLEM = "application/problem+json"
RouterFactory = Callable[[Callable[..., Any]], APIRouter]
"""Builds a router given the dependency that yields the caller's account id."""

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


@dataclass
class ApiRuntime:
    pool: ClientPool
    topics: TopicNames
    bootstrap_servers: str
    snapshot: Callable[[], MetricsSnapshot] = MetricsSnapshot
    extra_routers: list[RouterFactory] = field(default_factory=list)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "error": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class _Cached:
    """A value recomputed at most every `ttl_s` seconds (for headers and probes)."""

    def __init__(self, compute: Callable[[], Any], ttl_s: float) -> None:
        self._compute = compute
        self._ttl = ttl_s
        self._at = -1e9
        self._value: Any = None

    def get(self) -> Any:
        now = time.monotonic()
        if now - self._at > self._ttl:
            try:
                self._value = self._compute()
            except Exception:
                self._value = None
            self._at = now
        return self._value


def build_http_app(settings: Settings, runtime: ApiRuntime) -> FastAPI:
    authenticator = Authenticator(settings.api.management_keys)
    app = FastAPI(
        title="keypulse",
        version="0.1.0",
        description="Usage and alerting for API keys. Authenticate with "
        "`Authorization: Bearer <management key>`.",
    )

    def caller(request: Request) -> Caller:
        who = authenticator.authenticate(request.headers.get("authorization"))
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            authenticator.require_write(who)
        request.state.caller = who
        return who

    def account(request: Request) -> str:
        return caller(request).account_id

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        response = problem(exc.status, exc.code, exc.detail)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "invalid_request", detail, errors=errors)

    def _freshness() -> float | None:
        result = runtime.pool.run(lambda q: q.freshness(runtime.topics.requests, runtime.clock()))
        return result.newest_event_age_s

    freshness = _Cached(_freshness, ttl_s=1.0)

    @app.middleware("http")
    async def _freshness_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path not in ("/healthz", "/metrics"):
            age = await asyncio.to_thread(freshness.get)
            response.headers["X-Data-Freshness-Seconds"] = "" if age is None else f"{age:.1f}"
        return response

    app.include_router(usage_router(runtime.pool.run, account, runtime.clock))
    for factory in runtime.extra_routers:
        app.include_router(factory(account))

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Kafka and ClickHouse reachable, lag, freshness")
    def readyz() -> JSONResponse:
        kafka_ok = broker_ready(runtime.bootstrap_servers, timeout_ms=1000)
        try:
            runtime.pool.with_client(lambda c: c.command("SELECT 1"))
            clickhouse_ok = True
        except Exception:
            clickhouse_ok = False
        snap = runtime.snapshot()
        body = {
            "status": "ready" if kafka_ok and clickhouse_ok else "not_ready",
            "kafka": kafka_ok,
            "clickhouse": clickhouse_ok,
            "consumer_lag": snap.consumer_lag,
            "freshness_seconds": freshness.get(),
        }
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    registry = metrics_registry(lambda: _with_freshness(runtime.snapshot(), freshness.get()))

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(render(registry), media_type="text/plain; version=0.0.4")

    return app


def _with_freshness(snapshot: MetricsSnapshot, age: float | None) -> MetricsSnapshot:
    if snapshot.freshness_seconds is None:
        snapshot.freshness_seconds = age
    return snapshot
