"""The API Keys page (`/console/keys`) and its changes: create, rename, roll, revoke,
delete.

- `GET /keys` lists the account's keys (`key_list_reads`: newest first, 50 a page,
  `?q=` a name or key-id fragment, `?status=` active/revoked/expired, `?page=`), with
  the plan and limits line; read-only sign-ins get no write control at all.
- `GET /keys/{key_id}/rename|roll|revoke|delete` (htmx, admin only): a row menu's
  dialog, fetched when chosen, so that a page of keys carries no per-key forms.
- `POST /keys` (create), `POST /keys/{key_id}/rename|roll|revoke|delete`: each taken
  only with an admin sign-in and the session's CSRF token (`Console.writer`, whatever
  the page showed), run as the JSON API's command; answers in `key_answers`.
- A new key's secret (create, roll) is in that one answer only, in a dialog that
  removes itself when closed; console answers are `no-store`.

(No `from __future__ import annotations`: FastAPI resolves the local `Annotated` aliases.)
"""

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from infra.console.key_answers import KeyAnswers
from infra.console.key_forms import (
    DEFAULT_OVERLAP,
    CreateForm,
    create_command,
    revoke_command,
    roll_command,
)
from infra.console.key_list_view import ACTIONS, KeyQuery
from infra.console.pages import BASE, Console, ConsoleUser
from streams.keyservice.commands import DeleteKey, RenameKey

__all__ = ["keys_router"]


def keys_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)
    User = Annotated[ConsoleUser, Depends(console.user)]  # noqa: N806
    Writer = Annotated[ConsoleUser, Depends(console.writer)]  # noqa: N806
    answers = KeyAnswers(console)

    @router.get("/keys")
    def keys_page(
        request: Request, user: User, q: str = "", status: str = "", page: str = "1"
    ) -> Response:
        return answers.page(request, user, KeyQuery.of(q, status, page))

    @router.post("/keys")
    async def create_key(
        request: Request,
        user: Writer,
        name: Annotated[str, Form()] = "",
        type: Annotated[str, Form()] = "",
        access: Annotated[str, Form()] = "full",
        idempotency_key: Annotated[str, Form()] = "",
    ) -> Response:
        command = partial(create_command, user.account_id, name, type, access, idempotency_key)
        again = partial(answers.create_dialog, request, user, CreateForm(name, type, access))
        done = partial(answers.created, request, user)
        return await answers.change(request, user, command, again, done)

    def dialog_route(action: str) -> None:
        @router.get(f"/keys/{{key_id}}/{action}", name=f"keys_{action}_dialog")
        def dialog(request: Request, key_id: str, user: Writer) -> Response:
            return answers.action_dialog(request, user, action, key_id)

    for action in ACTIONS:
        dialog_route(action)

    @router.post("/keys/{key_id}/rename")
    async def rename_key(
        request: Request, key_id: str, user: Writer, name: Annotated[str, Form()] = ""
    ) -> Response:
        command = partial(RenameKey, user.account_id, key_id, name)
        again = answers.dialog_again(request, user, "rename", key_id, name)
        done = partial(answers.renamed, request, user, key_id, name)
        return await answers.change(request, user, command, again, done)

    @router.post("/keys/{key_id}/roll")
    async def roll_key(
        request: Request,
        key_id: str,
        user: Writer,
        overlap: Annotated[str, Form()] = DEFAULT_OVERLAP,
        idempotency_key: Annotated[str, Form()] = "",
    ) -> Response:
        command = partial(roll_command, user.account_id, key_id, overlap, idempotency_key)
        again = answers.dialog_again(request, user, "roll", key_id)
        done = partial(answers.rolled, request, user, key_id)
        return await answers.change(request, user, command, again, done)

    @router.post("/keys/{key_id}/revoke")
    async def revoke_key(
        request: Request,
        key_id: str,
        user: Writer,
        reason: Annotated[str, Form()] = "user_request",
    ) -> Response:
        command = partial(revoke_command, user.account_id, key_id, reason)
        again = answers.dialog_again(request, user, "revoke", key_id)
        done = partial(answers.said, request, user, f"Revoked {key_id}: it no longer works.")
        return await answers.change(request, user, command, again, done)

    @router.post("/keys/{key_id}/delete")
    async def delete_key(request: Request, key_id: str, user: Writer) -> Response:
        command = partial(DeleteKey, user.account_id, key_id)
        again = answers.dialog_again(request, user, "delete", key_id)
        done = partial(answers.said, request, user, f"Deleted {key_id}.")
        return await answers.change(request, user, command, again, done)

    return router
