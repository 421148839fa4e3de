"""Reports of leaked keys from a secret-scanning partner (GitHub's program): a signed POST
of found tokens. Filled in by the leaked-keys work of issue 16; until then it has no
routes."""

from fastapi import APIRouter

from infra.http.context import RouteContext


def secret_scanning_router(ctx: RouteContext) -> APIRouter:
    del ctx
    return APIRouter()
