"""Error bodies of the HTTP API: every error is `application/problem+json` (RFC 9457)
with `type`, `title`, `status`, a machine `error` code and a human `detail`.

Stable codes: `invalid_api_key`, `revoked_api_key`, `insufficient_scope` (auth);
`invalid_request` (parameters or body); `not_found`; the key service's refusals with
their own codes and facts (`plan_limit_reached` with `plan`, `key_type`, `limit` and
`active`; `key_not_found`, `key_not_revoked`, `invalid_name`, `idempotency_key_reused`,
`account_not_found`, `admin_limit_reached`, ...); `unavailable` (503, with
`Retry-After`: Kafka or the key registry did not answer in time; safe to retry);
`quota_exceeded` (429, `POST /verify`: the problem type `quota-exceeded` of the IETF
RateLimit header fields draft, with `violated-policies`, the RateLimit headers and
`Retry-After`); `too_many_failures` (429, with `Retry-After`: the caller's address, or
the `client_ip` of a verification, failed to authenticate too often lately; see
`infra.http.auth_throttle`); `invalid_signature` (401, `POST /secret-scanning/github`:
no, an unknown or a bad reporter signature).
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
from infra.http.auth_throttle import TooManyFailures
from infra.kafka.admin import KafkaUnreachable
from streams.keyservice.commands import CommandRefused
from streams.keyservice.service import Unavailable

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
    key_id: str | None = Field(default=None, description="The key the refusal is about")
    plan: str | None = Field(default=None, description="plan_limit_reached: the plan")
    key_type: str | None = Field(
        default=None, description="plan_limit_reached: the limit class (live, test or admin)"
    )
    limit: int | None = Field(default=None, description="plan_limit_reached: the limit")
    active: int | None = Field(default=None, description="plan_limit_reached: active keys")
    violated_policies: list[str] | None = Field(
        default=None,
        alias="violated-policies",
        description="quota_exceeded: the quota policies the request exceeded (`renders`)",
    )


class ApiError(Exception):
    """An error answer with its own code (`key_not_found`, ...) and extra facts."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def problem(
    status: int, code: str, detail: str, *, problem_type: str = "about:blank", **extra: Any
) -> JSONResponse:
    body = {
        "type": problem_type,
        "title": code.replace("_", " "),
        "status": status,
        "error": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
"""The problem type the RateLimit header fields draft registers for an exhausted quota."""


def quota_exceeded(
    detail: str, policies: list[str], headers: dict[str, str], **extra: Any
) -> JSONResponse:
    """429 `quota-exceeded`, naming the `violated-policies`, with the RateLimit headers
    and Retry-After in `headers`."""
    extra["violated-policies"] = policies
    response = problem(429, "quota_exceeded", detail, problem_type=QUOTA_EXCEEDED_TYPE, **extra)
    response.headers.update(headers)
    return response


_PROBLEM_SCHEMA = Problem.model_json_schema(by_alias=True)


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_response("No key, a malformed, unknown or revoked key"),
    403: problem_response(
        "A full-access key (product API only), or a read-only key tried to change something"
    ),
    404: problem_response("No such resource in the caller's account"),
    422: problem_response("Invalid parameters or body"),
    429: problem_response(
        "Too many failed authentications from this address lately (`too_many_failures`); "
        "see Retry-After"
    ),
    503: problem_response("The key registry or Kafka did not answer in time; see Retry-After"),
}
"""The error responses every authenticated route documents."""

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: problem_response("Kafka did not confirm the event; retry later")
}
"""The error response of routes that publish to Kafka."""

QUOTA_EXCEEDED_RESPONSE = problem_response(
    "A refused render: the test key's 100 renders of this UTC day are used "
    "(`quota-exceeded`, `violated-policies`, RateLimit headers, Retry-After); or too many "
    "failed service tokens from this address, or failed verifications for the body's "
    "`client_ip`, lately (`too_many_failures`, Retry-After)"
)

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: problem_response("The account's state does not allow it (see `error`)")
}


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


async def _too_many_failures(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyFailures)
    response = problem(429, "too_many_failures", exc.detail)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError | CommandRefused)
    extra = {k: v for k, v in exc.extra.items() if v is not None}
    return problem(exc.status, exc.code, exc.detail, **extra)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    response = problem(503, "unavailable", exc.detail)
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


_UNPARSED_BODY = "There was an error parsing the body"
"""FastAPI's 400 detail for a body it could not read (e.g. bytes that are not UTF-8)."""


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSED_BODY:
        # an unreadable body is an invalid body: the documented 422 of every route
        message = "not valid JSON: send a UTF-8 JSON body with Content-Type: application/json"
        errors = [{"field": "body", "message": message}]
        return problem(422, "invalid_request", f"body: {message}", errors=errors)
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
    """Answer auth failures, refusals, unavailability, HTTP errors and invalid requests
    with problem bodies."""
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(TooManyFailures, _too_many_failures)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CommandRefused, _api_error)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
