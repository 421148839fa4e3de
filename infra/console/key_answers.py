"""How the API Keys page answers (`KeyAnswers`): the page, its dialogs, and its forms'
commands with their outcomes and refusals.

- A change runs as the key-service command the JSON API sends for it
  (`infra.http.commands.run`, with the caller's key id and address recorded).
- An htmx post is answered with the refreshed keys section (`keys_swap.html`: the dialog
  slot emptied and the message put in the page's status region, out of band) at the
  page and filter the browser is on (`HX-Current-URL`); a plain post is redirected to
  the page (303), or answered the page itself when a secret must be shown.
- A refusal (`CommandRefused`, `Unavailable`) answers an htmx post with its dialog again
  and the reason, retargeted at the dialog's slot (`HX-Retarget`), with 200 so that the
  browser logs no failed request; a plain post gets the page with the reason and the
  refusal's status (409, 422, 503, ...).
- A new key's secret is put only in the answer to its create or roll (`Shown`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from infra.console.key_forms import (
    ACCESS_CHOICES,
    DEFAULT_OVERLAP,
    OVERLAP_CHOICES,
    REPLAYED,
    REVOKE_REASONS,
    CreateForm,
    new_form_token,
    refusal_text,
    unavailable_text,
)
from infra.console.key_list_reads import KeyListPage, read_key_list
from infra.console.key_list_view import KeyQuery, actions_for, plan_view
from infra.console.pages import Console, ConsoleUser
from infra.http.commands import run
from infra.http.key_views import meta_of
from schemas.key_ledger import KeyRecord, KeyStatus
from streams.keyservice.commands import Command, CommandRefused
from streams.keyservice.service import Outcome, Unavailable

__all__ = ["Dialog", "KeyAnswers", "Shown"]

TITLE = "API Keys"
CREATE_SLOT = "#create-slot"
DIALOG_SLOT = "#dialog-slot"
Dialog = Callable[[str], Response]
"""Answers a refused form: its dialog again, with the reason."""
Done = Callable[[Outcome], Awaitable[Response]]
"""Answers a change made."""

NOT_OFFERED = {
    "roll": "Only an active key that has not been rolled yet can be rolled.",
    "revoke": "This key is no longer active.",
    "delete": "Only a revoked or expired key can be deleted: revoke it first.",
}


@dataclass(frozen=True)
class Shown:
    """A secret shown once, after a create or a roll (`secret` None: an idempotent
    repeat of the form, which cannot show it again)."""

    title: str
    key_id: str
    name: str
    key_type: str
    access: str
    secret: str | None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, outcome: Outcome, title: str, notes: tuple[str, ...] = ()) -> Shown:
        key = outcome.key
        assert key is not None
        decision = outcome.decision
        replayed = (REPLAYED,) if decision.replayed else ()
        return cls(
            title=title,
            key_id=key.key_id,
            name=key.name,
            key_type=key.key_type.value,
            access=key.access.value,
            secret=decision.secret,
            notes=notes + tuple(decision.warnings) + replayed,
        )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def current_query(request: Request) -> KeyQuery:
    """The filter and page the browser is on (htmx sends its URL), else the first page."""
    url = request.headers.get("hx-current-url", "")
    params = parse_qs(urlsplit(url).query) if url else {}

    def one(name: str) -> str:
        return params.get(name, [""])[0]

    return KeyQuery.of(one("q"), one("status"), one("page") or 1)


@dataclass(frozen=True)
class KeyAnswers:
    console: Console

    # ---------------------------------------------------------------- reading

    def record(self, user: ConsoleUser, key_id: str) -> KeyRecord | None:
        """The registry's record of one of the user's account's keys (not deleted)."""
        ledger = self.console.ctx.registry.account_if_ready(user.account_id)
        found = ledger.keys.get(key_id) if ledger is not None else None
        return None if found is None or found.status is KeyStatus.DELETED else found

    def read(self, user: ConsoleUser, query: KeyQuery) -> KeyListPage:
        """The page (blocking)."""
        return read_key_list(self.console.ctx, user.account_id, query, self.console.now())

    async def read_async(self, user: ConsoleUser, query: KeyQuery) -> KeyListPage:
        return await run_in_threadpool(self.read, user, query)

    def context(self, page: KeyListPage, **extra: Any) -> dict[str, Any]:
        return {
            "title": TITLE,
            "section": "keys",
            "page": page,
            "query": page.query,
            "plan": page.plan,
            "access_choices": ACCESS_CHOICES,
            "create_form": CreateForm(),
            "create_token": new_form_token(),
            **extra,
        }

    def page(self, request: Request, user: ConsoleUser, query: KeyQuery) -> Response:
        page = self.read(user, query)
        return self.console.render(request, "keys.html", user, self.context(page))

    # ---------------------------------------------------------------- dialogs

    def _dialog(
        self, request: Request, user: ConsoleUser, template: str, slot: str, **values: Any
    ) -> Response:
        response = self.console.render(request, template, user, values)
        response.headers["HX-Retarget"] = slot
        response.headers["HX-Reswap"] = "innerHTML"
        return response

    def create_dialog(
        self, request: Request, user: ConsoleUser, form: CreateForm, error: str
    ) -> Response:
        """The create dialog again, as typed, with why it was refused."""
        ledger = self.console.ctx.registry.account_if_ready(user.account_id)
        return self._dialog(
            request,
            user,
            "keys_create_dialog.html",
            CREATE_SLOT,
            plan=plan_view(ledger, self.console.now()) if ledger is not None else None,
            access_choices=ACCESS_CHOICES,
            create_form=form,
            create_token=new_form_token(),
            create_error=error,
        )

    def action_dialog(
        self,
        request: Request,
        user: ConsoleUser,
        action: str,
        key_id: str,
        error: str = "",
        typed: str = "",
    ) -> Response:
        """A row menu's dialog (rename, roll, revoke, delete) for the key as it now is:
        no form, and the reason, when the key is gone or cannot take the change
        (`typed`: the name a refused rename asked for)."""
        now = self.console.now()
        key = self.record(user, key_id)
        offered = actions_for(key.status_at(now).value, key.replaced_by) if key else frozenset()
        if not error and key is None:
            error = f"No key {key_id} in this account (it may have been deleted)."
        elif not error and action not in offered:
            error = NOT_OFFERED.get(action, "This key cannot take that change.")
        return self._dialog(
            request,
            user,
            "keys_dialog.html",
            DIALOG_SLOT,
            action=action,
            key_id=key_id,
            key=meta_of(key, now) if key is not None else None,
            offered=action in offered,
            dialog_error=error,
            typed=typed,
            token=new_form_token(),
            overlaps=OVERLAP_CHOICES,
            default_overlap=DEFAULT_OVERLAP,
            reasons=REVOKE_REASONS,
        )

    def dialog_again(
        self, request: Request, user: ConsoleUser, action: str, key_id: str, typed: str = ""
    ) -> Dialog:
        return partial(self.action_dialog, request, user, action, key_id, typed=typed)

    # ---------------------------------------------------------------- changes

    async def change(
        self,
        request: Request,
        user: ConsoleUser,
        command: Callable[[], Command],
        dialog: Dialog,
        done: Done,
    ) -> Response:
        """Run the command the form makes: `done(outcome)`, or the refusal's answer (the
        dialog again for htmx, else the page with the reason and the refusal's status)."""
        try:
            outcome = await run(self.console.ctx.registry, user.caller, request, command())
        except CommandRefused as exc:
            error, status = refusal_text(exc), exc.status
        except Unavailable as exc:
            error, status = unavailable_text(exc), 503
        else:
            return await done(outcome)
        if is_htmx(request):
            return dialog(error)
        page = await self.read_async(user, KeyQuery())
        context = self.context(page, page_error=error)
        return self.console.render(request, "keys.html", user, context, status_code=status)

    async def changed(
        self, request: Request, user: ConsoleUser, message: str, shown: Shown | None = None
    ) -> Response:
        """A change made: the refreshed section (htmx), else the page again."""
        if message:
            self.console.flash(user, message)
        if is_htmx(request):
            page = await self.read_async(user, current_query(request))
            context = self.context(page, shown=shown)
            return self.console.render(request, "keys_swap.html", user, context)
        if shown is None:
            return self.console.redirect("/keys")
        page = await self.read_async(user, KeyQuery())
        return self.console.render(request, "keys.html", user, self.context(page, shown=shown))

    async def created(self, request: Request, user: ConsoleUser, outcome: Outcome) -> Response:
        shown = Shown.of(outcome, "Key created")
        message = f"Created {shown.key_id} ({shown.name})."
        return await self.changed(request, user, message, shown)

    async def rolled(
        self, request: Request, user: ConsoleUser, key_id: str, outcome: Outcome
    ) -> Response:
        old = self.record(user, key_id)
        until = old.expires_at if old is not None else None
        when = until.strftime("%Y-%m-%d %H:%M UTC") if until is not None else "now"
        note = f"The old key {key_id} keeps working until {when}, then expires."
        shown = Shown.of(outcome, "Key rolled", (note,))
        message = f"Rolled {key_id}: its replacement is {shown.key_id}."
        return await self.changed(request, user, message, shown)

    async def renamed(
        self, request: Request, user: ConsoleUser, key_id: str, name: str, outcome: Outcome
    ) -> Response:
        notes = " ".join(outcome.decision.warnings)
        message = f"Renamed {key_id} to “{name}”. {notes}".strip()
        return await self.changed(request, user, message)

    async def said(
        self, request: Request, user: ConsoleUser, message: str, outcome: Outcome
    ) -> Response:
        del outcome
        return await self.changed(request, user, message)
