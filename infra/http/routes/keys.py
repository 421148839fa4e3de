"""`/api-keys` reads: the caller's keys, each with its request counts.

Key metadata is served from the key registry (the follower of the key-events topic, the
same state the key service decides on) and usage numbers from ClickHouse
(`infra.http.key_views`): a key created, renamed or revoked a moment ago, by this process
or another one, reads back as it now is, where the `keys` projection may still lag; a
get right after a create never 404s. While the registry is loading, reads fall back to
the projection alone. Another account's key is a 404 (`key_not_found`), never a leak.
The changes (create, rename, revoke, delete) are in `key_commands`.

(No `from __future__ import annotations` in routes modules: FastAPI must resolve the
route signatures' local `Annotated` aliases at definition time.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from infra.http.context import RouteContext
from infra.http.key_views import KeyOut, listing
from infra.http.problems import PROBLEM_RESPONSES, ApiError
from projections.key_activity import key_activity
from schemas.key_ledger import KeyRecord, KeyStatus

__all__ = ["KeyListOut", "KeyOut", "keys_router", "require_key"]


class KeyListOut(BaseModel):
    data: list[KeyOut]


def key_not_found(key_id: str) -> ApiError:
    return ApiError(404, "key_not_found", f"no key {key_id} in this account", key_id=key_id)


def registry_record(ctx: RouteContext, account_id: str, key_id: str) -> KeyRecord | None:
    """The registry's record of the account's key (None: unknown to the registry, or the
    registry is not ready)."""
    ledger = ctx.registry.account_if_ready(account_id)
    return None if ledger is None else ledger.keys.get(key_id)


def require_key(ctx: RouteContext, account_id: str, key_id: str) -> None:
    """404 unless `key_id` is one of the account's keys (revoked included, deleted not)."""
    record = registry_record(ctx, account_id, key_id)
    if record is not None:
        if record.status is KeyStatus.DELETED:
            raise key_not_found(key_id)
        return
    if not ctx.pool.run(lambda q: q.has_key(account_id, key_id)):
        raise key_not_found(key_id)


def keys_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["keys"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806

    @router.get("/api-keys", response_model=KeyListOut, summary="List keys with usage")
    def list_keys(account_id: Account) -> KeyListOut:
        ledger = ctx.registry.account_if_ready(account_id)
        now = ctx.clock()
        rows = ctx.pool.run(lambda q: q.list_keys(account_id, now))
        records = list(ledger.keys.values()) if ledger is not None else []
        ids = sorted({r.key_id for r in records} | {r.key_id for r in rows})
        activity = ctx.pool.with_client(lambda c: key_activity(c, account_id, ids, now))
        return KeyListOut(data=listing(records, rows, now, activity))

    @router.get("/api-keys/{key_id}", response_model=KeyOut, summary="One key with usage")
    def get_key(key_id: str, account_id: Account) -> KeyOut:
        record = registry_record(ctx, account_id, key_id)
        if record is not None and record.status is KeyStatus.DELETED:
            raise key_not_found(key_id)
        now = ctx.clock()
        row = ctx.pool.run(lambda q: q.get_key(account_id, key_id, now))
        if record is None and row is None:
            raise key_not_found(key_id)
        found = ctx.pool.with_client(lambda c: key_activity(c, account_id, [key_id], now))
        activity = found.get(key_id)
        if record is not None:
            return KeyOut.of_record(record, row, now, activity)
        assert row is not None
        return KeyOut.of(row, now, activity)

    return router
