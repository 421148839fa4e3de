"""Error bodies of the HTTP API: every error is `application/problem+json` (RFC 9457)
with `type`, `title`, `status`, a machine `error` code and a human `detail`.

Bodies never carry account data (key names, rule contents), only the ids the caller sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.http.auth import AuthError
from infra.kafka.admin import KafkaUnreachable

T = TypeVar("T")

PROBLEM = "application/problem+json"

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


class Problem(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    error: str = Field(description="A machine code such as invalid_api_key or not_found")
    detail: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="invalid_request only: the `field` and `message` of each"
    )


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": code.replace("_", " "),
        "status": status,
        "error": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


_PROBLEM_SCHEMA = Problem.model_json_schema()


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem_response("No, an unknown or a revoked management key"),
    403: _problem_response("A read-only key tried to write"),
    404: _problem_response("No such resource in the caller's account"),
    422: _problem_response("Invalid parameters or body"),
}
"""The error responses every authenticated route documents."""

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _problem_response("Kafka did not confirm the event; retry later")
}
"""The error response of routes that publish to Kafka."""


def published(send: Callable[[], T]) -> T:
    """Run a publication to Kafka; an unreachable broker answers 503."""
    try:
        return send()
    except KafkaUnreachable as exc:
        raise HTTPException(503, detail=str(exc)) from None


async def _auth(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    response = problem(exc.status, exc.code, exc.detail)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
    return problem(exc.status_code, code, str(exc.detail))


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "invalid_request", detail, errors=errors)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer auth failures, HTTP errors and invalid requests with problem bodies."""
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
