"""What the HTTP app and its routes modules are built from.

`ApiRuntime` is what the composition root hands the app (clients, topics, the worker's
metrics, optionally a key service); `RouteContext` is what every routes module receives
from the app factory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel

from infra.alert_admin import Publisher
from infra.http.auth import Caller
from infra.http.client_pool import ClientPool
from infra.http.key_registry import KeyRegistry
from infra.http.metrics import MetricsSnapshot
from infra.http.paging import DEFAULT_LIMIT, MAX_LIMIT
from infra.settings import Settings
from schemas.topics import TopicNames
from schemas.utc import utc_now
from streams.keyservice.service import KeyService

Snapshot = Callable[[], Awaitable[MetricsSnapshot]]
"""Reads the serving worker's counters (the metrics and readiness probes await it)."""


async def no_worker() -> MetricsSnapshot:
    """The snapshot of a server that runs no worker (server mode): nothing counted."""
    return MetricsSnapshot()


@dataclass
class ApiRuntime:
    """The app's I/O: a client pool, the topics, the broker, the worker's snapshot.

    `publisher` sends rule events and replays; when None, `build_http_app` creates one.
    The app closes it at shutdown either way. `keys` is the key service the management
    API decides commands with and authenticates against; when None, the app starts one
    on `topics.key_events` when it starts and closes it at shutdown (a key service handed
    over here is closed by whoever made it).
    """

    pool: ClientPool
    topics: TopicNames
    bootstrap_servers: str
    snapshot: Snapshot = no_worker
    clock: Callable[[], datetime] = utc_now
    publisher: Publisher | None = None
    keys: KeyService | None = None


@dataclass(frozen=True)
class RouteContext:
    """What each routes module is built from. `caller` is the FastAPI dependency that
    authenticates and authorizes the request and yields the `Caller`; `account` yields
    only the caller's account id (the same check)."""

    settings: Settings
    pool: ClientPool
    clock: Callable[[], datetime]
    publisher: Publisher
    registry: KeyRegistry
    caller: Callable[..., Awaitable[Caller]]
    account: Callable[..., Awaitable[str]]


Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"At most this many items, newest first (default {DEFAULT_LIMIT}, "
        f"at most {MAX_LIMIT}); `has_more` says whether more exist.",
    ),
]


class Page(BaseModel):
    """A list answer: `has_more` is true when the `limit` cut further items off."""

    has_more: bool


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ApiRuntime", "Limit", "Page", "RouteContext"]
