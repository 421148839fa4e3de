"""`/audit-log`: every lifecycle event of the caller's account (account created, plan
changed, key created, renamed, revoked, deleted) with the acting key id, the time and
the source IP, newest first, from the audit projection in ClickHouse.

Pages: `limit` items, then `?before=<seq of the last one>` for the next page
(`has_more` says whether there is one). Being a projection, an event may take a moment
to appear after its command was answered.

(No `from __future__ import annotations`: see `infra.http.routes.keys`.)
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from infra.http.context import DEFAULT_LIMIT, Limit, Page, RouteContext
from infra.http.problems import PROBLEM_RESPONSES
from projections.queries import AuditRow


class AuditEntryOut(BaseModel):
    seq: int = Field(description="The account's event sequence number")
    event_id: str
    type: str = Field(description="account.created, key.created, key.revoked, ...")
    key_id: str | None
    actor: str = Field(description="The key id (or operator) that acted")
    source_ip: str | None
    occurred_at: datetime
    detail: str = Field(description="What changed (the name, the reason, the plan, ...)")

    @classmethod
    def of(cls, row: AuditRow) -> "AuditEntryOut":
        return cls(
            seq=row.seq,
            event_id=str(row.event_id),
            type=row.type,
            key_id=row.key_id,
            actor=row.actor,
            source_ip=row.source_ip,
            occurred_at=row.occurred_at,
            detail=row.detail,
        )


class AuditLogOut(Page):
    data: list[AuditEntryOut]


BeforeQ = Annotated[
    int | None, Query(ge=1, description="Only events before this seq (the next page)")
]


def audit_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["account"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806

    @router.get(
        "/audit-log",
        response_model=AuditLogOut,
        summary="Every key and account event with who, when and from where, newest first",
    )
    def audit_log(
        account_id: Account, limit: Limit = DEFAULT_LIMIT, before: BeforeQ = None
    ) -> AuditLogOut:
        rows, has_more = ctx.pool.run(lambda q: q.audit_log(account_id, limit, before_seq=before))
        return AuditLogOut(data=[AuditEntryOut.of(r) for r in rows], has_more=has_more)

    return router
