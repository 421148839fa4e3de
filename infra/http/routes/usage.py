"""Usage of one key (`/api-keys/{key_id}/usage`, `/timeseries`) and of the whole account
(`/usage`), over the windows of `projections.windows`. Another account's key is a 404.
"""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from infra.http.context import RouteContext
from infra.http.problems import PROBLEM_RESPONSES
from infra.http.routes.keys import require_key
from projections.queries import Point, Usage
from projections.windows import Window


class UsageOut(BaseModel):
    key_id: str | None = None
    window: Window
    requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    renders: int
    bytes_out: int

    @classmethod
    def of(cls, usage: Usage, window: Window, key_id: str | None = None) -> "UsageOut":
        return cls(
            key_id=key_id,
            window=window,
            requests=usage.requests,
            errors_4xx=usage.errors_4xx,
            errors_5xx=usage.errors_5xx,
            error_rate=usage.error_rate,
            latency_p50_ms=usage.p50_ms,
            latency_p95_ms=usage.p95_ms,
            latency_p99_ms=usage.p99_ms,
            renders=usage.renders,
            bytes_out=usage.bytes_out,
        )


class PointOut(BaseModel):
    at: datetime
    requests: int
    errors_4xx: int
    errors_5xx: int
    latency_p95_ms: float | None

    @classmethod
    def of(cls, p: Point) -> "PointOut":
        return cls(
            at=p.at,
            requests=p.requests,
            errors_4xx=p.errors_4xx,
            errors_5xx=p.errors_5xx,
            latency_p95_ms=p.p95_ms,
        )


class TimeseriesOut(BaseModel):
    key_id: str
    window: Window
    step_s: int
    points: list[PointOut]


class TopKeyOut(BaseModel):
    key_id: str
    requests: int


class AccountUsageOut(BaseModel):
    window: Window
    total: UsageOut
    top_keys: list[TopKeyOut]


_STEPS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
WindowQ = Annotated[Window, Query(description="24h, 7d or 30d")]
StepQ = Annotated[str, Query(pattern="^(1m|5m|15m|1h|6h|1d)$", description="Bucket width")]


def usage_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["usage"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806
    run = ctx.pool.run

    @router.get("/api-keys/{key_id}/usage", response_model=UsageOut, summary="Key usage")
    def key_usage(key_id: str, account_id: Account, window: WindowQ = Window.H24) -> UsageOut:
        require_key(ctx, account_id, key_id)
        usage = run(lambda q: q.key_usage(account_id, key_id, window, ctx.clock()))
        return UsageOut.of(usage, window, key_id)

    @router.get(
        "/api-keys/{key_id}/timeseries", response_model=TimeseriesOut, summary="Key timeseries"
    )
    def key_timeseries(
        key_id: str, account_id: Account, window: WindowQ = Window.H24, step: StepQ = "1h"
    ) -> TimeseriesOut:
        require_key(ctx, account_id, key_id)
        step_s = _STEPS[step]
        width = timedelta(seconds=step_s)
        points = run(lambda q: q.key_timeseries(account_id, key_id, window, width, ctx.clock()))
        return TimeseriesOut(
            key_id=key_id, window=window, step_s=step_s, points=[PointOut.of(p) for p in points]
        )

    @router.get("/usage", response_model=AccountUsageOut, summary="Account usage and top keys")
    def account_usage(account_id: Account, window: WindowQ = Window.H24) -> AccountUsageOut:
        result = run(lambda q: q.account_usage(account_id, window, ctx.clock()))
        return AccountUsageOut(
            window=window,
            total=UsageOut.of(result.total, window),
            top_keys=[TopKeyOut(key_id=k, requests=n) for k, n in result.top_keys],
        )

    return router
