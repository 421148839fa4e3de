"""`/api-keys`: the caller's keys with their request counts.

(No `from __future__ import annotations` in routes modules: FastAPI must resolve the
route signatures' local `Annotated` aliases at definition time.)
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from infra.http.context import RouteContext
from infra.http.problems import PROBLEM_RESPONSES
from projections.queries import KeyRow


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


def require_key(ctx: RouteContext, account_id: str, key_id: str) -> None:
    """404 unless `key_id` is one of the account's keys."""
    if not ctx.pool.run(lambda q: q.has_key(account_id, key_id)):
        raise HTTPException(404, detail=f"no key {key_id} in this account")


def keys_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["keys"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806

    @router.get("/api-keys", response_model=KeyListOut, summary="List keys with usage")
    def list_keys(account_id: Account) -> KeyListOut:
        rows = ctx.pool.run(lambda q: q.list_keys(account_id, ctx.clock()))
        return KeyListOut(data=[KeyOut.of(r) for r in rows])

    @router.get("/api-keys/{key_id}", response_model=KeyOut, summary="One key")
    def get_key(key_id: str, account_id: Account) -> KeyOut:
        row = ctx.pool.run(lambda q: q.get_key(account_id, key_id, ctx.clock()))
        if row is None:
            raise HTTPException(404, detail=f"no key {key_id} in this account")
        return KeyOut.of(row)

    return router
