"""Data freshness for the HTTP API: the age of the newest ingested request event, cached
for a second, sent as `X-Data-Freshness-Seconds` on every response but the probes'."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from fastapi import FastAPI, Request, Response

from infra.http.client_pool import ClientPool

T = TypeVar("T")

HEADER = "X-Data-Freshness-Seconds"
_NO_HEADER = ("/healthz", "/metrics")


class Cached(Generic[T]):
    """A value recomputed at most every `ttl_s` seconds; None while computing it fails.

    `get` blocks while it recomputes (call it from a thread)."""

    def __init__(self, compute: Callable[[], T], ttl_s: float) -> None:
        self._compute = compute
        self._ttl = ttl_s
        self._at = -1e9
        self._value: T | None = None

    def get(self) -> T | None:
        now = time.monotonic()
        if now - self._at > self._ttl:
            try:
                self._value = self._compute()
            except Exception:
                self._value = None
            self._at = now
        return self._value


def freshness_of(
    pool: ClientPool, requests_topic: str, clock: Callable[[], datetime]
) -> Cached[float | None]:
    """Seconds since the newest request event that queries can see (None: no events)."""

    def compute() -> float | None:
        now = clock()
        return pool.run(lambda q: q.freshness(requests_topic, now)).newest_event_age_s

    return Cached(compute, ttl_s=1.0)


def install_freshness_header(app: FastAPI, freshness: Cached[float | None]) -> None:
    @app.middleware("http")
    async def _freshness_header(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path not in _NO_HEADER:
            age = await asyncio.to_thread(freshness.get)
            response.headers[HEADER] = "" if age is None else f"{age:.1f}"
        return response
