"""Using the web console over plain HTTP, as a browser would: sign in with a key (the
sign-in form's CSRF token and cookie first), then read pages. For `bench.console` and the
demo's end-to-end test; the parsing (`form_token`, `server_ms`) is pure."""

from __future__ import annotations

import re

import httpx

__all__ = ["SignInFailed", "form_token", "server_ms", "sign_in"]

_TOKEN = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
_APP_DUR = re.compile(r"(?:^|,)\s*app\s*;(?:[^,]*;)?\s*dur=([0-9]+(?:\.[0-9]+)?)")


class SignInFailed(Exception):
    """The console did not sign in with the key (the page's status and message)."""


def form_token(html: str) -> str | None:
    """The first form's hidden `csrf_token` value in a console page."""
    found = _TOKEN.search(html)
    return found.group(1) if found else None


def server_ms(header: str | None) -> float | None:
    """`app;dur=<ms>` of a `Server-Timing` header (`infra.console.timing`), else None."""
    if not header:
        return None
    found = _APP_DUR.search(header)
    return float(found.group(1)) if found else None


def sign_in(http: httpx.Client, secret: str) -> None:
    """Sign `http` (a client with `base_url` set; it keeps the cookies) in to the console
    with `secret`. Raises `SignInFailed` unless the console sends it to the keys page."""
    form = http.get("/console/sign-in")
    token = form_token(form.text)
    if form.status_code != 200 or token is None:
        raise SignInFailed(f"GET /console/sign-in answered {form.status_code} without a form")
    answer = http.post(
        "/console/sign-in", data={"key": secret, "csrf_token": token}, follow_redirects=False
    )
    target = answer.headers.get("location", "")
    if answer.status_code != 303 or not target.endswith("/console/keys"):
        raise SignInFailed(f"POST /console/sign-in answered {answer.status_code} ({target})")
