"""A small pool of ClickHouse clients so concurrent HTTP requests never share one."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TypeVar

from clickhouse_connect.driver.client import Client

from projections.queries import UsageQueries

T = TypeVar("T")


class ClientPool:
    """Lends clients one request at a time; `run(fn)` blocks (call from a thread)."""

    def __init__(self, factory: Callable[[], Client], size: int = 4) -> None:
        self._clients = [factory() for _ in range(size)]
        self._free: queue.Queue[Client] = queue.Queue()
        for client in self._clients:
            self._free.put(client)

    def run(self, fn: Callable[[UsageQueries], T]) -> T:
        client = self._free.get()
        try:
            return fn(UsageQueries(client))
        finally:
            self._free.put(client)

    def with_client(self, fn: Callable[[Client], T]) -> T:
        client = self._free.get()
        try:
            return fn(client)
        finally:
            self._free.put(client)

    @property
    def clients(self) -> list[Client]:
        return list(self._clients)
