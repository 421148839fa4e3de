"""HTTP routes for usage questions (mounted by infra's app factory).

Routes receive the caller's account through the `account` dependency that infra
provides, and run queries through a `QueryRunner` (a pool of clients, off the loop).
Every answer is scoped to that account; another account's key is a 404.
(No `from __future__ import annotations` here: FastAPI must resolve the route
signatures' local `Annotated` aliases at definition time.)
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from projections.queries import KeyRow, Usage, UsageQueries
from projections.windows import Window

T = TypeVar("T")


class QueryRunner(Protocol):
    def __call__(self, fn: Callable[[UsageQueries], T]) -> T: ...


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


class KeyOut(BaseModel):
    key_id: str
    name: str
    type: str
    access: str
    status: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    requests_24h: int
    requests_7d: int
    requests_30d: int

    @classmethod
    def of(cls, row: KeyRow) -> "KeyOut":
        return cls(
            key_id=row.key_id,
            name=row.name,
            type=row.key_type,
            access=row.access,
            status=row.status,
            plan=row.plan,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used,
            requests_24h=row.requests_24h,
            requests_7d=row.requests_7d,
            requests_30d=row.requests_30d,
        )


class KeyListOut(BaseModel):
    data: list[KeyOut]


class PointOut(BaseModel):
    at: datetime
    requests: int
    errors_4xx: int
    errors_5xx: int
    latency_p95_ms: float | None


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


def usage_router(
    run: QueryRunner, account: Callable[..., Any], clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(tags=["usage"])
    Account = Annotated[str, Depends(account)]  # noqa: N806
    WindowQ = Annotated[Window, Query(description="24h, 7d or 30d")]  # noqa: N806

    def known_key(account_id: str, key_id: str) -> KeyRow:
        row = run(lambda q: q.get_key(account_id, key_id, clock()))
        if row is None:
            raise HTTPException(404, detail=f"no key {key_id} in this account")
        return row

    def require_key(account_id: str, key_id: str) -> None:
        if not run(lambda q: q.has_key(account_id, key_id)):
            raise HTTPException(404, detail=f"no key {key_id} in this account")

    @router.get("/api-keys", response_model=KeyListOut, summary="List keys with usage")
    def list_keys(account_id: Account) -> KeyListOut:
        rows = run(lambda q: q.list_keys(account_id, clock()))
        return KeyListOut(data=[KeyOut.of(r) for r in rows])

    @router.get("/api-keys/{key_id}", response_model=KeyOut, summary="One key")
    def get_key(key_id: str, account_id: Account) -> KeyOut:
        return KeyOut.of(known_key(account_id, key_id))

    @router.get("/api-keys/{key_id}/usage", response_model=UsageOut, summary="Key usage")
    def key_usage(key_id: str, account_id: Account, window: WindowQ = Window.H24) -> UsageOut:
        require_key(account_id, key_id)
        usage = run(lambda q: q.key_usage(account_id, key_id, window, clock()))
        return UsageOut.of(usage, window, key_id)

    @router.get(
        "/api-keys/{key_id}/timeseries", response_model=TimeseriesOut, summary="Key timeseries"
    )
    def key_timeseries(
        key_id: str,
        account_id: Account,
        window: WindowQ = Window.H24,
        step: Annotated[str, Query(pattern="^(1m|5m|15m|1h|6h|1d)$")] = "1h",
    ) -> TimeseriesOut:
        require_key(account_id, key_id)
        step_s = _STEPS[step]
        points = run(
            lambda q: q.key_timeseries(
                account_id, key_id, window, timedelta(seconds=step_s), clock()
            )
        )
        return TimeseriesOut(
            key_id=key_id,
            window=window,
            step_s=step_s,
            points=[
                PointOut(
                    at=p.at,
                    requests=p.requests,
                    errors_4xx=p.errors_4xx,
                    errors_5xx=p.errors_5xx,
                    latency_p95_ms=p.p95_ms,
                )
                for p in points
            ],
        )

    @router.get("/usage", response_model=AccountUsageOut, summary="Account usage and top keys")
    def account_usage(account_id: Account, window: WindowQ = Window.H24) -> AccountUsageOut:
        result = run(lambda q: q.account_usage(account_id, window, clock()))
        return AccountUsageOut(
            window=window,
            total=UsageOut.of(result.total, window),
            top_keys=[TopKeyOut(key_id=k, requests=n) for k, n in result.top_keys],
        )

    return router
