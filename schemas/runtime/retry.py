"""Retry with capped exponential backoff, for I/O that must eventually succeed.

The agents and the evaluator never drop work on a ClickHouse or Kafka outage: they
wait and try again (0.25 s, doubling, capped), logging each failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    logger: logging.Logger,
    max_delay_s: float = 10.0,
) -> T:
    """Await `attempt()` until it returns, sleeping 0.25 s, 0.5 s, ... (≤ `max_delay_s`)."""
    delay = 0.25
    while True:
        try:
            return await attempt()
        except Exception as exc:
            logger.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


async def off_loop_until_done(
    executor: Executor,
    fn: Callable[..., T],
    *args: Any,
    logger: logging.Logger,
    max_delay_s: float = 10.0,
) -> T:
    """Run the blocking `fn(*args)` in `executor`, retrying with backoff until it works."""
    loop = asyncio.get_running_loop()
    return await until_done(
        lambda: loop.run_in_executor(executor, fn, *args),
        getattr(fn, "__name__", "call"),
        logger,
        max_delay_s,
    )
