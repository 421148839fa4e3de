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
from typing import TypeVar

T = TypeVar("T")


def _timeout(what: str, timeout_s: float, last: str) -> AssertionError:
    detail = f" (last: {last})" if last else ""
    return AssertionError(f"timed out after {timeout_s:g}s waiting for {what}{detail}")


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> T:
    """Await until `condition()` (sync or async) is truthy; return its value."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            value = condition()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return value
        except AssertionError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise _timeout(what, timeout_s, last)
        await asyncio.sleep(interval_s)


def eventually_sync(
    condition: Callable[[], T],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.05,
) -> T:
    """Block until `condition()` is truthy; return its value."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            value = condition()
            if value:
                return value
        except AssertionError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise _timeout(what, timeout_s, last)
        time.sleep(interval_s)
