"""What every console page handler uses: the signed-in user, rendering, form checks.

- `ConsoleUser` is the signed-in caller and their session; `user` (a FastAPI dependency
  from `Console.user`) yields it for reads or sends the browser to the sign-in page;
  `Console.writer` also checks the CSRF token (form field `csrf_token` or the
  `X-CSRF-Token` header htmx sends) and that the key is an admin key, refusing with 403
  otherwise, whatever the page showed; `Console.checked` checks only the token (sign-out).
- `Console.render` renders a template with the user, their CSRF token and the flash
  messages; every console response is `Cache-Control: no-store` (a secret shown once
  must not come back from a cache or the back button) with a strict CSP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from infra.console.session import Session, SessionStore, csrf_matches
from infra.http.auth import Authenticator, AuthError, Caller, authorize
from infra.http.context import RouteContext
from schemas.keys import KeyAccess

__all__ = [
    "BASE",
    "COOKIE",
    "SECURITY_HEADERS",
    "Console",
    "ConsoleUser",
    "NotSignedIn",
    "Refused",
]

BASE = "/console"
COOKIE = "keypulse_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TEMPLATES = Path(__file__).resolve().parent / "templates"

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class ConsoleUser:
    caller: Caller
    session: Session

    @property
    def can_write(self) -> bool:
        """Admin keys change things; read-only keys see no write controls."""
        return self.caller.access is KeyAccess.ADMIN

    @property
    def account_id(self) -> str:
        return self.caller.account_id


class NotSignedIn(Exception):
    """No live session: the browser goes to the sign-in page (`reason` shown there)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """A console request refused with a page that says why (403: CSRF or read-only)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Console:
    """The console's shared state, made once per app by `infra.console.app`."""

    ctx: RouteContext
    authenticator: Authenticator
    sessions: SessionStore = field(default_factory=SessionStore)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES))
    )

    def now(self) -> datetime:
        return self.ctx.clock()

    async def user(self, request: Request) -> ConsoleUser:
        """The signed-in user (FastAPI dependency), else `NotSignedIn`."""
        session = self.sessions.get(request.cookies.get(COOKIE), self.now())
        if session is None:
            raise NotSignedIn()
        try:
            caller = self.authenticator.resume(session.key_digest)
            authorize(caller, "GET")
        except AuthError as exc:
            self.sessions.end(session.token)
            raise NotSignedIn(f"Signed out: {exc.detail}.") from None
        return ConsoleUser(caller, session)

    async def checked(self, request: Request) -> ConsoleUser:
        """The signed-in user (any level) with a valid CSRF token (FastAPI dependency)."""
        user = await self.user(request)
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.method != "GET":
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not csrf_matches(user.session.csrf_token, given):
            raise Refused(
                403,
                "This form has expired or did not come from this console: reload the "
                "page and try again.",
            )
        return user

    async def writer(self, request: Request) -> ConsoleUser:
        """The signed-in admin user with a valid CSRF token (FastAPI dependency): what
        every change takes, whatever the page showed."""
        user = await self.checked(request)
        if not user.can_write:
            raise Refused(
                403,
                f"Key {user.caller.key_id} is read-only: sign in with an admin key to "
                "make changes.",
            )
        return user

    def flash(self, user: ConsoleUser, message: str) -> None:
        self.sessions.flash(user.session.token, message)

    def render(
        self,
        request: Request,
        template: str,
        user: ConsoleUser | None,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
        take_flashes: bool = True,
    ) -> HTMLResponse:
        """`take_flashes=False` for fragments that do not show them (a polled section
        must not swallow the flash meant for the next page)."""
        flashes = self.sessions.pop_flashes(user.session.token) if user and take_flashes else []
        values: dict[str, Any] = {
            "user": user,
            "base": BASE,
            "csrf_token": user.session.csrf_token if user else "",
            "flashes": flashes,
            **(context or {}),
        }
        response = self.templates.TemplateResponse(
            request, template, values, status_code=status_code
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def redirect(self, path: str) -> Response:
        """After a form post: see the page again (303), or tell htmx to go there."""
        response = RedirectResponse(f"{BASE}{path}", status_code=303)
        response.headers.update(SECURITY_HEADERS)
        return response


Dependency = Callable[[Request], Awaitable[ConsoleUser]]
