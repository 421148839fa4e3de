"""Data freshness for the HTTP API: the age of the newest ingested request event, cached
for a second, sent as `X-Data-Freshness-Seconds` on every response but the probes'.

The header is added by a plain ASGI middleware: while the cached value is fresh it is
read on the event loop (no thread, no query); once a second one request recomputes it
in a thread while the others wait for that one result.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.http.client_pool import ClientPool

T = TypeVar("T")

HEADER = "X-Data-Freshness-Seconds"
_NO_HEADER = ("/healthz", "/metrics")


class Cached(Generic[T]):
    """A value recomputed at most every `ttl_s` seconds; None while computing it fails.

    `get` blocks while it recomputes (call it from a thread); one caller recomputes, the
    others wait for its result. `stale` and `last` never block."""

    def __init__(self, compute: Callable[[], T], ttl_s: float) -> None:
        self._compute = compute
        self._ttl = ttl_s
        self._at = -1e9
        self._value: T | None = None
        self._lock = threading.Lock()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._at > self._ttl

    def last(self) -> T | None:
        """The value as last computed (None before the first computation)."""
        return self._value

    def get(self) -> T | None:
        with self._lock:
            if self.stale:
                try:
                    self._value = self._compute()
                except Exception:
                    self._value = None
                self._at = time.monotonic()
            return self._value


def freshness_of(
    pool: ClientPool, requests_topic: str, clock: Callable[[], datetime]
) -> Cached[float | None]:
    """Seconds since the newest request event that queries can see (None: no events)."""

    def compute() -> float | None:
        now = clock()
        return pool.run(lambda q: q.freshness(requests_topic, now)).newest_event_age_s

    return Cached(compute, ttl_s=1.0)


class FreshnessHeader:
    """ASGI middleware: `X-Data-Freshness-Seconds` on every HTTP response but the probes'."""

    def __init__(self, app: ASGIApp, freshness: Cached[float | None]) -> None:
        self.app = app
        self.freshness = freshness

    async def _age(self) -> float | None:
        if self.freshness.stale:
            return await asyncio.to_thread(self.freshness.get)
        return self.freshness.last()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _NO_HEADER:
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                age = await self._age()
                MutableHeaders(scope=message).append(HEADER, "" if age is None else f"{age:.1f}")
            await send(message)

        await self.app(scope, receive, send_with_header)


def install_freshness_header(app: FastAPI, freshness: Cached[float | None]) -> None:
    app.add_middleware(FreshnessHeader, freshness=freshness)
