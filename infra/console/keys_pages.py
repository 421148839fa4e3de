"""The API Keys page (`/console/keys`). Stub: the keys helper builds it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from infra.console.pages import BASE, Console, ConsoleUser


def keys_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)
    User = Annotated[ConsoleUser, Depends(console.user)]  # noqa: N806

    @router.get("/keys")
    def keys_page(request: Request, user: User) -> Response:
        return console.render(request, "keys.html", user, {"title": "API Keys"})

    return router
