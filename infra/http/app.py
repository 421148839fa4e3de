"""The HTTP API: a FastAPI app assembled from one routes module per resource, with auth.

`build_http_app(settings, runtime)` is the only constructor; in embedded mode the worker
serves it (faust's ASGI service), in server mode `keypulse api` runs it alone.
Every route but the probes needs `Authorization: Bearer <key>` (`infra.http.auth`): an
admin key for every change, an admin or read-only key for reads; full-access keys are
for the product API and refused here. Errors are `application/problem+json`
(`infra.http.problems`); responses carry `X-Data-Freshness-Seconds`. The app's lifespan
starts the key registry (`infra.http.key_registry`) and, at shutdown, closes it and the
app's one Kafka producer for rule events (`runtime.publisher`).
The web console (`infra.console`) is served by the same app under `/console`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request

from infra.alert_admin import Publisher
from infra.console.app import install_console
from infra.http.auth import Authenticator, Caller, authorize, throttled
from infra.http.auth_metrics import with_auth_counts
from infra.http.auth_throttle import AuthThrottle
from infra.http.context import ApiRuntime, RouteContext
from infra.http.freshness import freshness_of, install_freshness_header
from infra.http.key_registry import KeyRegistry
from infra.http.problems import install_problem_handlers
from infra.http.routes.account import account_router
from infra.http.routes.alerts import alerts_router
from infra.http.routes.audit import audit_router
from infra.http.routes.deliveries import deliveries_router
from infra.http.routes.health import health_router
from infra.http.routes.key_commands import key_commands_router
from infra.http.routes.keys import keys_router
from infra.http.routes.rules import rules_router
from infra.http.routes.secret_scanning import secret_scanning_router
from infra.http.routes.usage import usage_router
from infra.http.routes.verify import VerifyService, outcome_recorder, verify_router
from infra.settings import Settings

__all__ = ["ApiRuntime", "build_http_app"]

DESCRIPTION = (
    "API keys, their usage and alerting. Authenticate with `Authorization: Bearer <key>`: "
    "an admin key manages keys, the account and alert settings; a read-only key reads. "
    "Full-access keys are for the product API and cannot use this API."
)


def caller_dependency(authenticator: Authenticator) -> Callable[[Request], Awaitable[Caller]]:
    """The FastAPI dependency that authenticates and authorizes the request, keeps the
    `Caller` in `request.state.caller` and yields it. It runs on the event loop (no
    thread hop): it hashes the secret and reads the key follower's memory, nothing else.
    An address blocked for its failed attempts is refused (429) before its key is
    looked at; a guess is counted and its answer slowed (`authenticator.throttle`)."""

    async def caller(request: Request) -> Caller:
        address = request.client.host if request.client else None
        header = request.headers.get("authorization")
        who = await throttled(
            authenticator.throttle, address, lambda: authenticator.authenticate(header)
        )
        authorize(who, request.method)
        request.state.caller = who
        return who

    return caller


MANAGEMENT_KEY = {
    "type": "http",
    "scheme": "bearer",
    "description": "A key of the account: an admin key for changes, an admin or read-only "
    "key for reads (full-access keys are refused)",
}
SERVICE_TOKEN = {
    "type": "http",
    "scheme": "bearer",
    "description": "A service credential whose sha256 is in KEYPULSE_API_VERIFY_TOKENS",
}


UNAUTHENTICATED = ("/healthz", "/readyz", "/metrics", "/secret-scanning/")
"""Paths (or their prefixes) that take no credential: the probes, and the partner's
reports, whose signature is their credential."""


def document_credentials(app: FastAPI) -> None:
    """Declare the credentials in the OpenAPI document, once, when it is built: the
    service token on `POST /verify`, none on `UNAUTHENTICATED`, the management key on
    every other route (each of which depends on `caller`: the access matrix and the fuzz
    test hold every route to it). Nothing of this runs on a request."""
    build = app.openapi  # FastAPI's: builds the document once, then returns it

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if "managementKey" in schemes:
            return schema
        schemes.update(managementKey=MANAGEMENT_KEY, serviceToken=SERVICE_TOKEN)
        for path, item in schema["paths"].items():
            if path.startswith(UNAUTHENTICATED):
                continue
            name = "serviceToken" if path == "/verify" else "managementKey"
            for operation in item.values():
                operation["security"] = [{name: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _lifespan(
    publisher: Publisher, registry: KeyRegistry, verify: VerifyService
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        registry.start()
        try:
            yield
        finally:
            await asyncio.to_thread(verify.close)
            await asyncio.to_thread(registry.close)
            await asyncio.to_thread(publisher.close)

    return lifespan


def _registry(settings: Settings, runtime: ApiRuntime) -> KeyRegistry:
    if runtime.keys is not None:
        return KeyRegistry(runtime.keys)
    return KeyRegistry.starting(
        settings.kafka.bootstrap_servers, runtime.topics.key_events, runtime.topics.key_state
    )


def build_http_app(settings: Settings, runtime: ApiRuntime) -> FastAPI:
    if runtime.publisher is None:
        runtime.publisher = Publisher(settings)
    registry = _registry(settings, runtime)
    throttle = AuthThrottle.of(settings.api)
    authenticator = Authenticator(settings.api.management_keys, registry, throttle)
    caller = caller_dependency(authenticator)

    async def account(who: Caller = Depends(caller)) -> str:  # noqa: B008
        return who.account_id

    ctx = RouteContext(
        settings=settings,
        pool=runtime.pool,
        clock=runtime.clock,
        publisher=runtime.publisher,
        registry=registry,
        caller=caller,
        account=account,
    )
    verify = VerifyService(settings, registry, outcome_recorder(settings), throttle)
    app = FastAPI(
        title="keypulse",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan(runtime.publisher, registry, verify),
    )
    install_problem_handlers(app)
    freshness = freshness_of(runtime.pool, runtime.topics.requests, runtime.clock)
    install_freshness_header(app, freshness)
    routers = (
        keys_router,
        key_commands_router,
        account_router,
        audit_router,
        usage_router,
        rules_router,
        alerts_router,
        deliveries_router,
        secret_scanning_router,
    )
    for router in routers:
        app.include_router(router(ctx))
    app.include_router(verify_router(ctx, verify))
    counted = with_auth_counts(runtime, {"address": throttle, "client_ip": verify.clients})
    app.include_router(health_router(counted, freshness, registry))
    install_console(app, ctx, authenticator)
    document_credentials(app)
    return app
