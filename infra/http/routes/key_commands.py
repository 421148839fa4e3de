"""`/api-keys` changes (admin keys only): create, rename, revoke and delete.

Each is a command to the key service (`streams.keyservice`), recorded with the calling
key's id and the client's address (`infra.http.commands`), and answered once this
process has applied its event, so the very next request (a read, or an authentication
with a key just revoked) sees it. The secret of a new key is in the create answer only,
once; it is never logged or stored. `Idempotency-Key` on a create: `infra.http.idempotency`.
A name that says nothing ("Key 1", "Test") is accepted with a warning in `warnings`.
Revocation is immediate and permanent; only a revoked key can be deleted (otherwise 409
`key_not_revoked`); a deleted key is gone (404).

(No `from __future__ import annotations`: see `infra.http.routes.keys`.)
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from infra.http.auth import Caller
from infra.http.commands import run
from infra.http.context import RouteContext
from infra.http.idempotency import (
    IDEMPOTENCY_KEY_PATTERN,
    REPLAY_NOTE,
    REPLAYED_HEADER,
    request_hash,
)
from infra.http.key_views import KeyMeta, meta_of
from infra.http.problems import CONFLICT, PROBLEM_RESPONSES
from schemas.keys import KeyAccess, KeyType, RevokeReason
from streams.keyservice.commands import CreateKey, DeleteKey, RenameKey, RevokeKey
from streams.keyservice.service import Outcome

CREATE_EXAMPLE = {"name": "Production web app", "type": "live"}


class CreateKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What the key is for, e.g. 'Production web app'")
    type: KeyType
    access: KeyAccess = Field(
        default=KeyAccess.FULL,
        description="full (product API, the default), read_only, or admin (this API)",
    )


class RenameKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


class RevokeKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RevokeReason = RevokeReason.USER_REQUEST


class KeyCreatedOut(KeyMeta):
    secret: str | None = Field(
        description="The key itself: shown in this answer only, never again (null when "
        "the request was an idempotent replay)"
    )
    created: datetime = Field(description="When the key was created (= created_at)")
    warnings: list[str]
    replayed: bool = Field(description="An idempotent retry of an earlier create")
    note: str | None = None


class KeyChangedOut(KeyMeta):
    warnings: list[str] = Field(default_factory=list)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retry a create safely: the same key and body within 24 hours "
        "create nothing new (answer 200, without the secret)",
    ),
]


def _created(outcome: Outcome) -> KeyCreatedOut:
    assert outcome.key is not None
    decision = outcome.decision
    meta = meta_of(outcome.key)
    return KeyCreatedOut(
        **meta.model_dump(),
        secret=decision.secret,
        created=meta.created_at,
        warnings=decision.warnings,
        replayed=decision.replayed,
        note=REPLAY_NOTE if decision.replayed else None,
    )


def _changed(outcome: Outcome) -> KeyChangedOut:
    assert outcome.key is not None
    return KeyChangedOut(**meta_of(outcome.key).model_dump(), warnings=outcome.decision.warnings)


def key_commands_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["keys"], responses={**PROBLEM_RESPONSES, **CONFLICT})
    Who = Annotated[Caller, Depends(ctx.caller)]  # noqa: N806

    @router.post(
        "/api-keys",
        status_code=201,
        response_model=KeyCreatedOut,
        responses={200: {"model": KeyCreatedOut, "description": "An idempotent replay"}},
        summary="Create a key (its secret is in this answer only)",
    )
    async def create_key(
        request: Request,
        response: Response,
        caller: Who,
        body: Annotated[CreateKeyIn, Body(examples=[CREATE_EXAMPLE])],
        idempotency_key: IdempotencyKey = None,
    ) -> KeyCreatedOut:
        command = CreateKey(
            account_id=caller.account_id,
            name=body.name,
            key_type=body.type,
            access=body.access,
            idempotency_key=idempotency_key,
            request_hash=request_hash(body.model_dump(mode="json")) if idempotency_key else None,
        )
        answer = _created(await run(ctx.registry, caller, request, command))
        if answer.replayed:
            response.status_code = 200
            response.headers[REPLAYED_HEADER] = "true"
        return answer

    @router.patch("/api-keys/{key_id}", response_model=KeyChangedOut, summary="Rename a key")
    async def rename_key(
        key_id: str, request: Request, caller: Who, body: RenameKeyIn
    ) -> KeyChangedOut:
        command = RenameKey(caller.account_id, key_id, body.name)
        return _changed(await run(ctx.registry, caller, request, command))

    @router.post(
        "/api-keys/{key_id}/revoke",
        response_model=KeyChangedOut,
        summary="Revoke a key (immediate and permanent)",
    )
    async def revoke_key(
        key_id: str,
        request: Request,
        caller: Who,
        body: Annotated[RevokeKeyIn | None, Body()] = None,
    ) -> KeyChangedOut:
        reason = body.reason if body is not None else RevokeReason.USER_REQUEST
        command = RevokeKey(caller.account_id, key_id, reason)
        return _changed(await run(ctx.registry, caller, request, command))

    @router.delete(
        "/api-keys/{key_id}",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Deleted"}},
        summary="Delete a revoked key",
    )
    async def delete_key(key_id: str, request: Request, caller: Who) -> Response:
        await run(ctx.registry, caller, request, DeleteKey(caller.account_id, key_id))
        return Response(status_code=204)

    return router
