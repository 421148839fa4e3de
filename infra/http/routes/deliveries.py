"""`/deliveries`: the caller's notification deliveries by latest status, and replays."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from alerting.ports import DeliveryRecord, DeliveryStatus
from infra.http.context import DEFAULT_LIMIT, Limit, Page, RouteContext
from infra.http.problems import PROBLEM_RESPONSES, UNAVAILABLE, published
from projections.alert_store import ClickHouseDeliveryLog

StatusQ = Annotated[
    str | None,
    Query(
        pattern=f"^({'|'.join(DeliveryStatus.ALL)})$",
        description="Only deliveries whose latest status is this",
    ),
]


class DeliveryOut(BaseModel):
    delivery_id: str
    status: str
    channel_id: str
    attempt: int
    at: datetime
    outcome: str
    detail: str
    rule: str
    key_id: str
    state: str

    @classmethod
    def of(cls, r: DeliveryRecord) -> "DeliveryOut":
        return cls(
            delivery_id=r.delivery_id,
            status=r.status,
            channel_id=r.channel_id,
            attempt=r.attempt,
            at=r.at,
            outcome=r.outcome,
            detail=r.detail,
            rule=r.notification.rule.name,
            key_id=r.notification.key_id,
            state=r.notification.state.value,
        )


class DeliveryListOut(Page):
    data: list[DeliveryOut]


class ReplayAcceptedOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    delivery_id: str


def deliveries_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["deliveries"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806

    @router.get(
        "/deliveries",
        response_model=DeliveryListOut,
        summary="Notification deliveries by latest status, newest first",
    )
    def deliveries(
        account_id: Account, status: StatusQ = None, limit: Limit = DEFAULT_LIMIT
    ) -> DeliveryListOut:
        statuses = [status] if status else None
        found = ctx.pool.with_client(
            lambda c: ClickHouseDeliveryLog(c).list_latest(statuses, limit + 1, account_id)
        )
        return DeliveryListOut(
            data=[DeliveryOut.of(r) for r in found[:limit]], has_more=len(found) > limit
        )

    @router.post(
        "/deliveries/{delivery_id}/replay",
        status_code=202,
        response_model=ReplayAcceptedOut,
        responses=UNAVAILABLE,
        summary="Replay a delivery",
    )
    def replay(delivery_id: str, account_id: Account) -> ReplayAcceptedOut:
        record = ctx.pool.with_client(lambda c: ClickHouseDeliveryLog(c).get(delivery_id))
        if record is None or record.notification.account_id != account_id:
            raise HTTPException(404, detail=f"no delivery {delivery_id} in this account")
        published(lambda: ctx.publisher.replay(record.notification, delivery_id))
        return ReplayAcceptedOut(delivery_id=delivery_id)

    return router
