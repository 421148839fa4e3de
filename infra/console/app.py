"""The console's router: sign-in and sign-out, the pages, the static files.

`install_console(app, ctx, authenticator)` mounts everything under `/console` on the
HTTP API's app (`infra.http.app.build_http_app`) and installs the two exception
handlers: `NotSignedIn` sends the browser to the sign-in page (htmx gets `HX-Redirect`),
`Refused` answers a page saying why.

Sign-in takes an admin or read-only key (a full-access key is for the product API and
is refused, as on the API); the sign-in form has its own CSRF token (a double-submit
cookie), since there is no session yet. Bad keys at sign-in count against the address
in the API's brute-force limit (`Authenticator.throttle`): slowed, then the sign-in page
answers 429 with `Retry-After` for that address (an HTML page, not problem+json: the
console speaks to a browser).
"""

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from infra.console.alerts_pages import alerts_router
from infra.console.assets import OWN_DIR, vendor_file
from infra.console.key_detail_page import key_detail_router
from infra.console.keys_pages import keys_router
from infra.console.pages import (
    BASE,
    COOKIE,
    SECURITY_HEADERS,
    Console,
    ConsoleUser,
    NotSignedIn,
    Refused,
)
from infra.console.session import LIFETIME, csrf_matches
from infra.console.timing import ServerTiming
from infra.http.auth import Authenticator, AuthError, authorize, throttled
from infra.http.auth_throttle import TooManyFailures
from infra.http.context import RouteContext
from schemas.key_format import hash_secret

__all__ = ["install_console"]

SIGNIN_COOKIE = "keypulse_console_signin"
OWN_FILES = {"console.css": "text/css", "console.js": "text/javascript"}


def _cookie(response: Response, name: str, value: str, request: Request, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=BASE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _auth_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=BASE, include_in_schema=False)

    def signin_page(request: Request, message: str = "", status_code: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = console.render(
            request,
            "signin.html",
            None,
            {"signin_token": token, "message": message},
            status_code=status_code,
        )
        _cookie(response, SIGNIN_COOKIE, token, request, 3600)
        return response

    @router.get("")
    @router.get("/")
    def home() -> Response:
        return RedirectResponse(f"{BASE}/keys", status_code=303)

    @router.get("/sign-in")
    def sign_in_form(request: Request, reason: str = "") -> Response:
        return signin_page(request, reason)

    @router.post("/sign-in")
    async def sign_in(
        request: Request,
        key: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        if not csrf_matches(request.cookies.get(SIGNIN_COOKIE, ""), csrf_token or None):
            return signin_page(request, "The sign-in form expired: try again.", 403)
        secret = key.strip()
        if not secret:
            return signin_page(request, "Paste an admin or read-only key to sign in.", 400)
        auth = console.authenticator
        address = request.client.host if request.client else None
        try:
            caller = await throttled(
                auth.throttle, address, lambda: auth.authenticate(f"Bearer {secret}")
            )
            authorize(caller, "GET")
        except AuthError as exc:
            return signin_page(request, f"Cannot sign in: {exc.detail}.", 401)
        except TooManyFailures as exc:
            page = signin_page(request, f"Cannot sign in: {exc.detail}.", 429)
            page.headers["Retry-After"] = str(exc.retry_after_s)
            return page
        session = console.sessions.start(hash_secret(secret), console.now())
        response = RedirectResponse(f"{BASE}/keys", status_code=303)
        response.headers.update(SECURITY_HEADERS)
        _cookie(response, COOKIE, session.token, request, int(LIFETIME.total_seconds()))
        response.delete_cookie(SIGNIN_COOKIE, path=BASE)
        return response

    @router.post("/sign-out")
    def sign_out(user: Annotated[ConsoleUser, Depends(console.checked)]) -> Response:
        console.sessions.end(user.session.token)
        response = RedirectResponse(f"{BASE}/sign-in?reason=Signed+out.", status_code=303)
        response.headers.update(SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path=BASE)
        return response

    return router


def _static_router() -> APIRouter:
    router = APIRouter(prefix=f"{BASE}/static", include_in_schema=False)
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}

    @router.get("/vendor/{name}")
    def vendor(name: str) -> Response:
        path = vendor_file(name)
        if path is None:
            return Response(
                f"no vendor file {name} (run `make setup`, which runs `npm ci` in "
                "infra/console/assets)",
                status_code=404,
                media_type="text/plain",
            )
        return FileResponse(path, headers=headers)

    @router.get("/{name}")
    def own(name: str) -> Response:
        media = OWN_FILES.get(name)
        if media is None:
            return Response(f"no file {name}", status_code=404, media_type="text/plain")
        return FileResponse(OWN_DIR / name, media_type=media, headers=headers)

    return router


def install_console(app: FastAPI, ctx: RouteContext, authenticator: Authenticator) -> Console:
    console = Console(ctx, authenticator)
    app.add_middleware(ServerTiming)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        target = f"{BASE}/sign-in" + (f"?{urlencode({'reason': exc.reason})}" if exc.reason else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(COOKIE, path=BASE)
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return console.render(
            request, "refused.html", None, {"message": exc.message}, status_code=exc.status
        )

    app.include_router(_auth_router(console))
    app.include_router(_static_router())
    for router in (keys_router, key_detail_router, alerts_router):
        app.include_router(router(console))
    return console
