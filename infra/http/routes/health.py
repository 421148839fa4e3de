"""Probes and metrics (no authentication): `/healthz` (the process answers), `/readyz`
(Kafka and ClickHouse reachable, the key registry loaded, consumer lag, data freshness;
503 when not ready) and `/metrics` (Prometheus text format, from the serving worker's
snapshot)."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from infra.http.context import ApiRuntime
from infra.http.freshness import Cached
from infra.http.key_registry import KeyRegistry
from infra.http.metrics import CONTENT_TYPE, MetricsSnapshot, render
from infra.kafka.probe import broker_ready

SNAPSHOT_TIMEOUT_S = 5.0


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    kafka: bool
    clickhouse: bool
    key_registry: bool = Field(
        description="The key registry has read the key-events topic (keys can be checked)"
    )
    consumer_lag: int | None = Field(
        description="Request records not yet in ClickHouse (null: no worker consumes here)"
    )
    freshness_seconds: float | None = Field(
        description="Age of the newest request event queries can see (null: none yet)"
    )


def _clickhouse_ok(runtime: ApiRuntime) -> bool:
    try:
        runtime.pool.with_client(lambda c: c.command("SELECT 1"))
    except Exception:
        return False
    return True


async def _snapshot(runtime: ApiRuntime, freshness: Cached[float | None]) -> MetricsSnapshot:
    """The worker's snapshot (an empty one when it cannot be read in time), with freshness."""
    try:
        snap = await asyncio.wait_for(runtime.snapshot(), SNAPSHOT_TIMEOUT_S)
    except TimeoutError:
        snap = MetricsSnapshot()
    if snap.freshness_seconds is None:
        snap.freshness_seconds = await asyncio.to_thread(freshness.get)
    return snap


def health_router(
    runtime: ApiRuntime, freshness: Cached[float | None], registry: KeyRegistry
) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz", response_model=HealthOut, summary="Liveness")
    def healthz() -> HealthOut:
        return HealthOut()

    @router.get(
        "/readyz",
        response_model=ReadyOut,
        responses={
            503: {
                "model": ReadyOut,
                "description": "Kafka or ClickHouse unreachable, or the key registry loading",
            }
        },
        summary="Kafka and ClickHouse reachable, key registry loaded, lag, freshness",
    )
    async def readyz() -> JSONResponse:
        kafka_ok, clickhouse_ok, snap = await asyncio.gather(
            asyncio.to_thread(broker_ready, runtime.bootstrap_servers, 1000),
            asyncio.to_thread(_clickhouse_ok, runtime),
            _snapshot(runtime, freshness),
        )
        keys_ok = registry.ready
        body = ReadyOut(
            status="ready" if kafka_ok and clickhouse_ok and keys_ok else "not_ready",
            kafka=kafka_ok,
            clickhouse=clickhouse_ok,
            key_registry=keys_ok,
            consumer_lag=snap.consumer_lag,
            freshness_seconds=snap.freshness_seconds,
        )
        status = 200 if body.status == "ready" else 503
        return JSONResponse(body.model_dump(mode="json"), status_code=status)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        snap = await _snapshot(runtime, freshness)
        return Response(render(snap), media_type=CONTENT_TYPE)

    return router
