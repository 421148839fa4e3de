"""Retry transient I/O failures with capped exponential backoff; let every other error out.

The agents and the evaluator never drop work on a ClickHouse or Kafka outage: they wait
and try again (0.25 s, doubling, capped). Which failures are transient is the caller's
call, through an `IsTransient` predicate: this package imports no I/O library, so the
packages that know clickhouse_connect or Kafka errors build their own predicates (see
`projections.transient` and `streams.worker.failures`) on top of `io_failure`, the
stdlib-only default. Anything else (a `TypeError`, a SQL syntax error) is raised at
once, on the first attempt, so a bug surfaces instead of stalling a worker.

Logging follows the state, not the attempts: one warning when an operation starts
failing, one info line when it recovers (with the attempt count); the tries in between
are logged at debug level only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

IsTransient = Callable[[BaseException], bool]
"""True for a failure worth retrying (a lost connection, a timeout, a busy server)."""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it (`__cause__`, else `__context__`), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def io_failure(exc: BaseException) -> bool:
    """The stdlib-only notion of a transient failure: `exc` or one of its causes is an
    `OSError` (connection refused or reset, `TimeoutError`, ...) or declares itself
    retriable (Kafka client errors carry a true `retriable` attribute)."""
    return any(
        isinstance(e, OSError) or getattr(e, "retriable", False) is True for e in causes(exc)
    )


def any_of(*predicates: IsTransient) -> IsTransient:
    """A predicate that holds when any of `predicates` does."""

    def check(exc: BaseException) -> bool:
        return any(p(exc) for p in predicates)

    return check


def of_types(*types: type[BaseException]) -> IsTransient:
    """A predicate that holds for `exc` or a cause of it being one of `types`."""

    def check(exc: BaseException) -> bool:
        return any(isinstance(e, types) for e in causes(exc))

    return check


class _Outage:
    """The failing stretch of one operation: logs its start and its end, once each."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.logger = logger
        self.attempts = 0
        self.began = 0.0

    def failed(self, exc: BaseException, delay: float) -> None:
        self.attempts += 1
        if self.attempts == 1:
            self.began = time.monotonic()
            self.logger.warning(
                "%s failed (%s: %s); retrying with backoff until it works",
                self.what,
                type(exc).__name__,
                exc,
            )
        else:
            self.logger.debug("%s failed again (%s); next try in %.2fs", self.what, exc, delay)

    def succeeded(self) -> None:
        if self.attempts:
            self.logger.info(
                "%s recovered after %d failed attempts (%.1fs)",
                self.what,
                self.attempts,
                time.monotonic() - self.began,
            )


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    logger: logging.Logger,
    max_delay_s: float = 10.0,
    *,
    transient: IsTransient = io_failure,
    first_delay_s: float = 0.25,
) -> T:
    """Await `attempt()` until it returns, sleeping `first_delay_s`, doubling, at most
    `max_delay_s` between tries, as long as each failure is `transient`; a failure that
    is not is raised at once (on any try)."""
    delay = first_delay_s
    outage = _Outage(what, logger)
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            outage.failed(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
            continue
        outage.succeeded()
        return result


async def off_loop_until_done(
    executor: Executor,
    fn: Callable[..., T],
    *args: Any,
    logger: logging.Logger,
    max_delay_s: float = 10.0,
    transient: IsTransient = io_failure,
    first_delay_s: float = 0.25,
) -> T:
    """Run the blocking `fn(*args)` in `executor`, retrying transient failures with
    backoff (as `until_done`)."""
    loop = asyncio.get_running_loop()
    return await until_done(
        lambda: loop.run_in_executor(executor, fn, *args),
        getattr(fn, "__qualname__", getattr(fn, "__name__", "call")),
        logger,
        max_delay_s,
        transient=transient,
        first_delay_s=first_delay_s,
    )
