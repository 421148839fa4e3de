"""`/account`: the caller's plan, its key limits and active key counts, and plan changes.

Read from the key registry's state of the account (the same fold the key service
decides on), so the counts are exact and include a key created a moment ago. Limits are
per class: `live` and `test` keys count against the plan's limits, `admin` keys against
their own (`null`: unlimited). Active keys count, revoked ones do not. On a downgrade
below the current count the existing keys stay and new ones of that class are refused
(`plan_limit_reached`) until the account is under the limit again.

(No `from __future__ import annotations`: see `infra.http.routes.keys`.)
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from infra.http.auth import Caller
from infra.http.commands import run
from infra.http.context import RouteContext
from infra.http.problems import CONFLICT, PROBLEM_RESPONSES, ApiError
from schemas.key_ledger import AccountLedger
from schemas.plans import Plan
from schemas.utc import utc_now
from streams.keyservice.commands import ChangePlan

CLASSES = ("live", "test", "admin")


class KeyCounts(BaseModel):
    live: int | None
    test: int | None
    admin: int | None


class AccountOut(BaseModel):
    account_id: str
    plan: Plan
    limits: KeyCounts = Field(description="Active keys allowed per class (null: unlimited)")
    active: KeyCounts = Field(description="Active keys per class")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, ledger: AccountLedger, now: datetime) -> "AccountOut":
        return cls(
            account_id=ledger.account_id,
            plan=ledger.plan,
            limits=KeyCounts(**{c: ledger.limit(c) for c in CLASSES}),
            active=KeyCounts(**{c: ledger.count(c, now) for c in CLASSES}),
            created_at=ledger.created_at,
            updated_at=ledger.updated_at,
        )


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Plan


def account_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["account"], responses=PROBLEM_RESPONSES)
    Account = Annotated[str, Depends(ctx.account)]  # noqa: N806
    Who = Annotated[Caller, Depends(ctx.caller)]  # noqa: N806

    def current(account_id: str) -> AccountOut:
        ledger = ctx.registry.account(account_id)
        if ledger is None:
            raise ApiError(404, "account_not_found", f"no account {account_id}; create it first")
        return AccountOut.of(ledger, utc_now())

    @router.get("/account", response_model=AccountOut, summary="Plan, limits, active keys")
    def get_account(account_id: Account) -> AccountOut:
        return current(account_id)

    @router.put(
        "/account/plan", response_model=AccountOut, responses=CONFLICT, summary="Change the plan"
    )
    async def change_plan(request: Request, caller: Who, body: PlanIn) -> AccountOut:
        await run(ctx.registry, caller, request, ChangePlan(caller.account_id, body.plan))
        return current(caller.account_id)

    return router
