"""The Alerts page (`/console/alerts`). Stub: the alerts helper builds it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from infra.console.pages import BASE, Console, ConsoleUser


def alerts_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)
    User = Annotated[ConsoleUser, Depends(console.user)]  # noqa: N806

    @router.get("/alerts")
    def alerts_page(request: Request, user: User) -> Response:
        return console.render(request, "alerts.html", user, {"title": "Alerts"})

    return router
