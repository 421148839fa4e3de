"""The HTTP API: a FastAPI app assembled from one routes module per resource, with auth.

`build_http_app(settings, runtime)` is the only constructor; in embedded mode the worker
serves it (faust's ASGI service), in server mode `keypulse api` runs it alone.
Every route but the probes needs `Authorization: Bearer <management key>`; writes need a
full-scope key. Errors are `application/problem+json` (`infra.http.problems`); responses
carry `X-Data-Freshness-Seconds`. The app's one Kafka producer (`runtime.publisher`) is
closed when the app shuts down (its lifespan).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request

from infra.alert_admin import Publisher
from infra.http.auth import Authenticator
from infra.http.context import ApiRuntime, RouteContext
from infra.http.freshness import freshness_of, install_freshness_header
from infra.http.problems import install_problem_handlers
from infra.http.routes.alerts import alerts_router
from infra.http.routes.deliveries import deliveries_router
from infra.http.routes.health import health_router
from infra.http.routes.keys import keys_router
from infra.http.routes.rules import rules_router
from infra.http.routes.usage import usage_router
from infra.settings import Settings

__all__ = ["ApiRuntime", "build_http_app"]

_READS = ("GET", "HEAD", "OPTIONS")


def account_dependency(authenticator: Authenticator) -> Callable[[Request], str]:
    """The FastAPI dependency yielding the caller's account id (writes need scope full)."""

    def account(request: Request) -> str:
        who = authenticator.authenticate(request.headers.get("authorization"))
        if request.method not in _READS:
            authenticator.require_write(who)
        request.state.caller = who
        return who.account_id

    return account


def _lifespan(publisher: Publisher) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(publisher.close)

    return lifespan


def build_http_app(settings: Settings, runtime: ApiRuntime) -> FastAPI:
    if runtime.publisher is None:
        runtime.publisher = Publisher(settings)
    ctx = RouteContext(
        settings=settings,
        pool=runtime.pool,
        clock=runtime.clock,
        publisher=runtime.publisher,
        account=account_dependency(Authenticator(settings.api.management_keys)),
    )
    app = FastAPI(
        title="keypulse",
        version="0.1.0",
        description="Usage and alerting for API keys. Authenticate with "
        "`Authorization: Bearer <management key>`.",
        lifespan=_lifespan(runtime.publisher),
    )
    install_problem_handlers(app)
    freshness = freshness_of(runtime.pool, runtime.topics.requests, runtime.clock)
    install_freshness_header(app, freshness)
    for router in (keys_router, usage_router, rules_router, alerts_router, deliveries_router):
        app.include_router(router(ctx))
    app.include_router(health_router(runtime, freshness))
    return app
