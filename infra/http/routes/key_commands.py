"""`/api-keys` changes (admin keys only): create, change (name, allow-list), roll, revoke
and delete.

Each is a command to the key service (`streams.keyservice`), recorded with the calling
key's id and the client's address (`infra.http.commands`), and answered once this
process has applied its event, so the very next request (a read, or an authentication
with a key just revoked) sees it. The secret of a new key is in the create answer only,
once; it is never logged or stored. `Idempotency-Key` on a create: `infra.http.idempotency`.
A name that says nothing ("Key 1", "Test") is accepted with a warning in `warnings`.
Revocation is immediate and permanent; only a revoked or expired key can be deleted
(otherwise 409 `key_not_revoked`); a deleted key is gone (404). A create may carry an
allow-list (`allowed_cidrs`) and an expiry (`expires_at`, or `expires_in` such as `30d`);
`PATCH` replaces the allow-list (`[]`: anywhere). `POST /api-keys/{id}/roll` makes the
replacement key (same name, type, access and allow-list) in one event and answers its
secret once; the old key keeps working for the overlap (0, 15m, 1h, 6h, 24h or 7d).

(No `from __future__ import annotations`: see `infra.http.routes.keys`.)
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

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
from infra.http.problems import CONFLICT, PROBLEM_RESPONSES, ApiError
from schemas.keys import KeyAccess, KeyType, RevokeReason
from streams.keyservice.commands import (
    MAX_NAME_LENGTH,
    OVERLAPS,
    Command,
    CreateKey,
    DeleteKey,
    RenameKey,
    RevokeKey,
    RollKey,
    SetAllowList,
    duration_of,
    normalised_cidrs,
    overlap_of,
    roll_hash,
)
from streams.keyservice.service import Outcome

CREATE_EXAMPLE = {"name": "Production web app", "type": "live"}
RESTRICTED_EXAMPLE = {
    "name": "Office integration",
    "type": "live",
    "allowed_cidrs": ["203.0.113.0/24", "2001:db8::/32"],
    "expires_in": "90d",
}
ROLL_EXAMPLE = {"overlap": "1h"}

# What the key service accepts, written into the OpenAPI document only: the service's own
# checks (`name_problem`, `duration_of`, `overlap_of`) keep refusing with their codes
# and messages (`invalid_name`, ...), which a pydantic constraint would replace.
NAME_SCHEMA: JsonDict = {
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
}
"""Not blank, no whitespace at either end, no control characters, at most 100 long."""
EXPIRES_IN_SCHEMA: JsonDict = {
    "pattern": r"^(?:[1-9][0-9]{0,5}m"
    r"|(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-5][0-9]{2}|87600)h"
    r"|(?:[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d)$"
}
"""A number (no leading zero, at most 6 digits) and a unit, m, h or d, up to 3650 days."""


class CreateKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="What the key is for, e.g. 'Production web app'",
        json_schema_extra=NAME_SCHEMA,
    )
    type: KeyType
    access: KeyAccess = Field(
        default=KeyAccess.FULL,
        description="full (product API, the default), read_only, or admin (this API)",
    )
    # Left out of the request hash's dump unless given (`_create_hash`), so a create
    # without them hashes as before they existed.
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        exclude=True,
        description="IPv4/IPv6 networks or addresses the key may be used from (at most "
        "100; a bare address is a /32 or /128); empty or left out: anywhere",
    )
    expires_at: datetime | None = Field(
        default=None, exclude=True, description="When the key stops working (with a zone)"
    )
    expires_in: str | None = Field(
        default=None,
        exclude=True,
        description="Instead of expires_at: how long the key works, e.g. 90m, 12h, 30d "
        "(at most 3650 days)",
        json_schema_extra=EXPIRES_IN_SCHEMA,
    )


class ChangeKeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": "A name, an allow-list, or both (a null counts as left out)",
            "anyOf": [
                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                {"required": ["allowed_cidrs"], "properties": {"allowed_cidrs": {"type": "array"}}},
            ],
        },
    )

    name: str | None = Field(
        default=None, description="The new name", json_schema_extra=NAME_SCHEMA
    )
    allowed_cidrs: list[str] | None = Field(
        default=None, description="The new allow-list, replacing the old one ([]: anywhere)"
    )


class RollKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap: str = Field(
        description="How long the old key keeps working: " + ", ".join(OVERLAPS),
        json_schema_extra={"enum": list(OVERLAPS)},
    )


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


def _created(outcome: Outcome, now: datetime) -> KeyCreatedOut:
    assert outcome.key is not None
    decision = outcome.decision
    meta = meta_of(outcome.key, now)
    return KeyCreatedOut(
        **meta.model_dump(),
        secret=decision.secret,
        created=meta.created_at,
        warnings=decision.warnings,
        replayed=decision.replayed,
        note=REPLAY_NOTE if decision.replayed else None,
    )


def _changed(outcome: Outcome, now: datetime) -> KeyChangedOut:
    assert outcome.key is not None
    return KeyChangedOut(
        **meta_of(outcome.key, now).model_dump(), warnings=outcome.decision.warnings
    )


def _create_hash(body: CreateKeyIn) -> str:
    """The create's request hash: the body with defaults, plus the allow-list and expiry
    as given when given (the CLI's `create_hash` gives the same for the same request)."""
    fields: dict[str, Any] = body.model_dump(mode="json")
    if body.allowed_cidrs:
        fields["allowed_cidrs"] = list(normalised_cidrs(body.allowed_cidrs))
    if body.expires_in is not None or body.expires_at is not None:
        fields["expires"] = body.expires_in or (body.expires_at and body.expires_at.isoformat())
    return request_hash(fields)


async def _change(
    ctx: RouteContext, caller: Caller, request: Request, key_id: str, body: ChangeKeyIn
) -> Outcome:
    """A PATCH: the rename, then the allow-list (each its own event); the last outcome,
    with the rename's warnings."""
    if body.name is None and body.allowed_cidrs is None:
        raise ApiError(422, "nothing_to_change", "give a name, allowed_cidrs, or both")
    outcome = None
    if body.name is not None:
        rename = RenameKey(caller.account_id, key_id, body.name)
        outcome = await run(ctx.registry, caller, request, rename)
    if body.allowed_cidrs is not None:
        allow = SetAllowList(caller.account_id, key_id, tuple(body.allowed_cidrs))
        warnings = outcome.decision.warnings if outcome is not None else []
        outcome = await run(ctx.registry, caller, request, allow)
        outcome.decision.warnings[:0] = warnings
    assert outcome is not None
    return outcome


def key_commands_router(ctx: RouteContext) -> APIRouter:
    router = APIRouter(tags=["keys"], responses={**PROBLEM_RESPONSES, **CONFLICT})
    Who = Annotated[Caller, Depends(ctx.caller)]  # noqa: N806

    async def created(
        request: Request, response: Response, caller: Who, command: Command
    ) -> KeyCreatedOut:
        answer = _created(await run(ctx.registry, caller, request, command), ctx.clock())
        if answer.replayed:
            response.status_code = 200
            response.headers[REPLAYED_HEADER] = "true"
        return answer

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
        body: Annotated[CreateKeyIn, Body(examples=[CREATE_EXAMPLE, RESTRICTED_EXAMPLE])],
        idempotency_key: IdempotencyKey = None,
    ) -> KeyCreatedOut:
        expires_in = None if body.expires_in is None else duration_of(body.expires_in)
        digest = _create_hash(body) if idempotency_key else None
        command = CreateKey(
            account_id=caller.account_id,
            name=body.name,
            key_type=body.type,
            access=body.access,
            idempotency_key=idempotency_key,
            request_hash=digest,
            allowed_cidrs=tuple(body.allowed_cidrs),
            expires_at=body.expires_at,
            expires_in=expires_in,
        )
        return await created(request, response, caller, command)

    @router.post(
        "/api-keys/{key_id}/roll",
        status_code=201,
        response_model=KeyCreatedOut,
        responses={200: {"model": KeyCreatedOut, "description": "An idempotent replay"}},
        summary="Roll a key: its replacement (secret in this answer only); the old key "
        "expires after the overlap",
    )
    async def roll_key(
        key_id: str,
        request: Request,
        response: Response,
        caller: Who,
        body: Annotated[RollKeyIn, Body(examples=[ROLL_EXAMPLE])],
        idempotency_key: IdempotencyKey = None,
    ) -> KeyCreatedOut:
        overlap = overlap_of(body.overlap)  # else 422 invalid_overlap, listing the values
        command = RollKey(
            caller.account_id,
            key_id,
            overlap,
            idempotency_key=idempotency_key,
            request_hash=roll_hash(key_id, body.overlap.strip()) if idempotency_key else None,
        )
        return await created(request, response, caller, command)

    @router.patch(
        "/api-keys/{key_id}",
        response_model=KeyChangedOut,
        summary="Rename a key or replace its allow-list",
    )
    async def change_key(
        key_id: str, request: Request, caller: Who, body: ChangeKeyIn
    ) -> KeyChangedOut:
        return _changed(await _change(ctx, caller, request, key_id, body), ctx.clock())

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
        return _changed(await run(ctx.registry, caller, request, command), ctx.clock())

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
