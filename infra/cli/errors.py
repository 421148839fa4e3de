"""The CLI's one error handler: a failure the user can act on is one red line on stderr
and a non-zero exit status, never a traceback.

Known failures are the exceptions `expected_errors()` lists; each carries a one-line message
that says what to do. Commands raise `CommandFailed` for their own such failures. The key
service's refusals print their stable code before the detail
(`error: plan_limit_reached: …`). Exit status 1, except `TEMPORARY_EXIT` (75,
EX_TEMPFAIL) when Kafka did not answer in time and the same command is safe to retry.
With `--json` a refusal or a timeout is also one JSON object on stdout
(`{"error": {"code": …, "detail": …, …}}`). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from infra.cli.console import err, print_json
from infra.kafka.admin import KafkaUnreachable
from infra.kafka.broker import BrokerError
from infra.settings import ConfigError
from streams.client.key_follower import NotReady
from streams.keyservice.commands import CommandRefused
from streams.keyservice.service import Unavailable

P = ParamSpec("P")
R = TypeVar("R")

TEMPORARY_EXIT = 75


class CommandFailed(Exception):
    """A command could not do what was asked; the message is one line."""


def expected_errors() -> tuple[type[Exception], ...]:
    """The failures a user can act on. The modules of the read and alert commands are
    imported here, when a command has failed, so that a command that does not need them
    (`keypulse keys create`, …) does not pay for their import (FastAPI, clickhouse-connect)."""
    from infra.alert_admin import AlertAdminError
    from infra.cli.read_backend import ReadError
    from infra.clickhouse import ClickHouseUnavailable

    return (
        CommandFailed,
        ConfigError,
        BrokerError,
        KafkaUnreachable,
        ClickHouseUnavailable,
        ReadError,
        AlertAdminError,
        CommandRefused,
        Unavailable,
        NotReady,
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, CommandRefused):
        return f"{exc.code}: {exc.detail}"
    if isinstance(exc, Unavailable):
        return f"unavailable: Kafka is slow or unreachable; {exc.detail}"
    if isinstance(exc, NotReady):
        return (
            f"unavailable: the key events could not be read from Kafka ({exc}); "
            "check that Kafka runs (`keypulse kafka status`) and retry"
        )
    return str(exc)


def _problem(exc: Exception) -> dict[str, Any] | None:
    """The JSON a script gets on stdout for a refusal or a timeout (None: no JSON)."""
    if isinstance(exc, CommandRefused):
        extra = {k: v for k, v in exc.extra.items() if v is not None}
        return {"code": exc.code, "detail": exc.detail, "status": exc.status, **extra}
    if isinstance(exc, Unavailable):
        return {"code": "unavailable", "detail": exc.detail, "retry_after_s": exc.retry_after_s}
    if isinstance(exc, NotReady):
        return {"code": "unavailable", "detail": str(exc)}
    return None


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: an expected failure becomes `error: <message>` and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, expected_errors()):
                raise
            problem = _problem(exc)
            if problem is not None and kwargs.get("as_json") is True:
                print_json({"error": problem})
            err.print(f"[red]error:[/red] {escape(_message(exc))}", highlight=False, soft_wrap=True)
            temporary = isinstance(exc, Unavailable | NotReady)
            raise typer.Exit(TEMPORARY_EXIT if temporary else 1) from None

    return wrapper
