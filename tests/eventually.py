"""The one way tests wait: poll a condition until it holds or a deadline passes.

`await eventually(lambda: x > 3, timeout_s=10, what="x above 3")` in async tests,
`eventually_sync(...)` in plain ones. The condition may return a value: a falsy one means
"not yet"; the first truthy one is returned. A condition that raises `AssertionError`
counts as "not yet" too, so it can carry a precise message; the last such message is
part of the timeout error. Never use `sleep` to prove that something did not happen:
wait for a counter that says the work was done (for example the evaluator's cycles).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class _Wait:
    """One wait's deadline and the last "not yet" message."""

    def __init__(self, timeout_s: float, what: str) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s, self.what, self.last = timeout_s, what, ""

    def failed(self, exc: AssertionError) -> None:
        self.last = str(exc)

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            detail = f" (last: {self.last})" if self.last else ""
            raise AssertionError(
                f"timed out after {self.timeout_s:g}s waiting for {self.what}{detail}"
            )


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]],
    timeout_s: float = ...,
    what: str = ...,
    interval_s: float = ...,
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T],
    timeout_s: float = ...,
    what: str = ...,
    interval_s: float = ...,
) -> T: ...


async def eventually(
    condition: Callable[[], Any],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> Any:
    """Await until `condition()` (sync or async) is truthy; return its value."""
    wait = _Wait(timeout_s, what)
    while True:
        try:
            value = condition()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return value
        except AssertionError as exc:
            wait.failed(exc)
        wait.check_deadline()
        await asyncio.sleep(interval_s)


def eventually_sync(
    condition: Callable[[], T],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> T:
    """Block until `condition()` is truthy; return its value."""
    wait = _Wait(timeout_s, what)
    while True:
        try:
            if value := condition():
                return value
        except AssertionError as exc:
            wait.failed(exc)
        wait.check_deadline()
        time.sleep(interval_s)
