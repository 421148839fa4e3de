"""A key's page (`/console/keys/{key_id}`): its metadata, usage cards and charts over the
chosen window (`?window=24h|7d|30d`), client addresses, verification outcomes and roll
status. A read page: read-only users see all of it, and it has no write controls.

Another account's key, a deleted key or an unknown id answers the same 404 page (the
ownership check of the JSON API: `infra.http.routes.keys.require_key`). The numbers come
from the queries behind `GET /api-keys/{id}/usage` and `/timeseries`
(`UsageQueries.key_summary`, `key_timeseries`), `projections.key_activity` and
`projections.key_traffic`, all read on one pooled client; `key_detail_view` decides what
is shown.

(No `from __future__ import annotations`: FastAPI must resolve the route signature's
local `Annotated` alias.)
"""

from datetime import datetime
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from infra.console.key_detail_view import (
    STEPS,
    KeyTraffic,
    key_detail,
    parse_window,
    window_plan,
)
from infra.console.pages import BASE, Console, ConsoleUser
from infra.http.context import RouteContext
from infra.http.key_views import KeyMeta, KeyOut, meta_of
from infra.http.problems import ApiError
from infra.http.routes.keys import registry_record, require_key
from projections.key_activity import key_activity
from projections.key_traffic import outcome_counts, recent_ips
from projections.queries import UsageQueries
from projections.windows import Window

__all__ = ["key_detail_router", "key_meta", "read_traffic"]


def key_meta(ctx: RouteContext, account_id: str, key_id: str, now: datetime) -> KeyMeta | None:
    """The account's key as `GET /api-keys/{id}` finds it (None: not this account's,
    deleted or unknown)."""
    try:
        require_key(ctx, account_id, key_id)
    except ApiError:
        return None
    record = registry_record(ctx, account_id, key_id)
    if record is not None:
        return meta_of(record, now)
    row = ctx.pool.run(lambda q: q.get_key(account_id, key_id, now))
    return None if row is None else KeyOut.of(row, now)


def read_traffic(
    ctx: RouteContext, account_id: str, key_id: str, window: Window, now: datetime
) -> KeyTraffic | None:
    """Everything the page shows about the key (None: no such key of the account)."""
    meta = key_meta(ctx, account_id, key_id, now)
    if meta is None:
        return None
    partner_id = meta.replaced_by or meta.replaces
    partner = key_meta(ctx, account_id, partner_id, now) if partner_id else None
    plan = window_plan(window, now)

    def read(client: Client) -> KeyTraffic:
        queries = UsageQueries(client)
        ids = [key_id, *([partner_id] if partner_id else [])]
        return KeyTraffic(
            meta=meta,
            window=window,
            summary=queries.key_summary(account_id, key_id, now),
            points=queries.key_timeseries(account_id, key_id, window, STEPS[window], now),
            activity=key_activity(client, account_id, ids, now),
            partner=partner,
            ips=recent_ips(client, account_id, key_id, plan.start),
            outcomes=outcome_counts(client, account_id, key_id, plan.start, plan.end),
        )

    return ctx.pool.with_client(read)


def key_detail_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)
    User = Annotated[ConsoleUser, Depends(console.user)]  # noqa: N806

    @router.get("/keys/{key_id}")
    def key_page(request: Request, key_id: str, user: User, window: str = "") -> Response:
        now = console.now()
        traffic = read_traffic(console.ctx, user.account_id, key_id, parse_window(window), now)
        if traffic is None:
            missing = {"title": "Key not found", "section": "keys", "key_id": key_id}
            return console.render(request, "key_detail_missing.html", user, missing, 404)
        view = key_detail(traffic, now)
        found = {"title": f"{view.key.name} · API Keys", "section": "keys", "view": view}
        return console.render(request, "key_detail.html", user, found)

    return router
