"""The CLI's one error handler: a failure the user can act on is one red line on stderr
and exit status 1, never a traceback.

Known failures are the exceptions in `EXPECTED_ERRORS`; each carries a one-line message
that says what to do. Commands raise `CommandFailed` for their own such failures.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from infra.alert_admin import AlertAdminError
from infra.cli.console import err
from infra.cli.read_backend import ReadError
from infra.clickhouse import ClickHouseUnavailable
from infra.kafka.admin import KafkaUnreachable
from infra.kafka.broker import BrokerError
from infra.settings import ConfigError

P = ParamSpec("P")
R = TypeVar("R")


class CommandFailed(Exception):
    """A command could not do what was asked; the message is one line."""


EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    CommandFailed,
    ConfigError,
    BrokerError,
    KafkaUnreachable,
    ClickHouseUnavailable,
    ReadError,
    AlertAdminError,
)


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: an expected failure becomes `error: <message>` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
