"""`/alerts`: the caller's alert instances (one per rule x key) and their states."""

from typing import Annotated

from fastapi import APIRouter, Depends

from infra.http.context import DEFAULT_LIMIT, Limit, Page, RouteContext
from infra.http.problems import PROBLEM_RESPONSES
from projections.alert_store import ClickHouseAlertStateStore
from schemas.alerts import AlertInstance


class AlertListOut(Page):
    data: list[AlertInstance]


def alerts_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["alerts"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806

    @router.get(
        "/alerts",
        response_model=AlertListOut,
        summary="Alert instances and their states, most recently changed first",
    )
    def alerts(account_id: Account, limit: Limit = DEFAULT_LIMIT) -> AlertListOut:
        found = ctx.pool.with_client(
            lambda c: ClickHouseAlertStateStore(c).list_instances(account_id, limit + 1)
        )
        return AlertListOut(data=found[:limit], has_more=len(found) > limit)

    return router
