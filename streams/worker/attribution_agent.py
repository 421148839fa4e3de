"""The attribution task: landed request events the registry attributes to no account are
counted (`stats.events_by_reason`, the `keypulse_unattributed_events` metric) and
recorded in `key_anomalies`, off the ingest path.

`on_block` is an `IngestAgent` listener: it only queues the landed block (at most
`max_queued_blocks`; beyond that a block is left unchecked and counted in
`stats.unchecked_events`). Every `tick_s` the task tallies the queued blocks by
(account_id, key_id) and lets the pure `Attribution` decide, looking owners up in the
registry and recording findings through the `AttributionStore`, all on its own thread.
The rules (the grace an unknown key gets, the caches) are `streams.worker.attribution`'s.

Transient store failures (per `transient`) are retried with backoff; any other error
ends the task through `on_bug` (by default `stop_on_bug`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from streams.worker.attribution import Attribution, count_pairs
from streams.worker.failures import stop_on_bug
from streams.worker.ports import (
    AttributionStore,
    InsertBlock,
    UnattributedEvents,
    UnattributedReason,
)

log = logging.getLogger(__name__)


@dataclass
class AttributionStats:
    blocks: int = 0
    """Landed blocks tallied."""
    checks: int = 0
    """Rounds completed (each after its blocks were tallied and its findings recorded)."""
    lookups: int = 0
    """Registry lookups."""
    findings: int = 0
    """`key_anomalies` rows recorded."""
    events_by_reason: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((r.value for r in UnattributedReason), 0)
    )
    """Unattributed request events recorded, by reason (`unknown_key`, `account_mismatch`)."""
    unchecked_events: int = 0
    """Events of blocks dropped from a full queue, never checked."""


@dataclass(frozen=True)
class _Landed:
    account_ids: list[str]
    key_ids: list[str]
    newest_at_ms: int
    token: str


class AttributionAgent:
    """Finds and records the unattributed events of the blocks ingest lands."""

    def __init__(
        self,
        store: AttributionStore,
        grace_s: float,
        tick_s: float = 2.0,
        max_queued_blocks: int = 1000,
        transient: IsTransient = io_failure,
        on_bug: Callable[[str, BaseException], None] = stop_on_bug,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._attribution = Attribution(grace_s)
        self._tick_s = tick_s
        self._queued: deque[_Landed] = deque()
        self._max_queued = max_queued_blocks
        self._transient = transient
        self._on_bug = on_bug
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-attribution")
        self.stats = AttributionStats()

    @property
    def pending(self) -> int:
        """Pairs (account, key) waiting for a verdict, besides the blocks still queued."""
        return self._attribution.pending

    @property
    def queued(self) -> int:
        """Landed blocks not tallied yet."""
        return len(self._queued)

    def on_block(self, block: InsertBlock) -> None:
        """IngestAgent listener: queue a landed block for the next round (no work here)."""
        if block.count == 0:
            return
        if len(self._queued) >= self._max_queued:
            self.stats.unchecked_events += block.count
            log.warning("attribution: queue full, %d events left unchecked", block.count)
            return
        cols = block.columns
        self._queued.append(
            _Landed(cols["account_id"], cols["key_id"], block.max_occurred_at_ms, block.token)
        )

    async def run(self) -> None:
        """The task body: a round every `tick_s`; a non-transient error goes to `on_bug`."""
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                await self.check()
        except Exception as exc:
            self._on_bug("attribution task", exc)
            raise

    async def check(self) -> list[UnattributedEvents]:
        """One round: tally the queued blocks, look up the owners not cached, record the
        findings; returns them."""
        blocks = list(self._queued)
        self._queued.clear()
        if blocks:
            await self._blocking(self._tally, blocks)
        findings: list[UnattributedEvents] = []
        if self._attribution.pending:
            wanted = self._attribution.lookups()
            found: dict[str, str] = {}
            if wanted:
                found = await self._blocking(self._store.owners, wanted)
                self.stats.lookups += 1
            findings = self._attribution.decide(found, self._clock())
        if findings:
            await self._blocking(self._store.record, findings)
            self._count(findings)
        self.stats.checks += 1
        return findings

    def _tally(self, blocks: list[_Landed]) -> None:
        for landed in blocks:
            counts = count_pairs(landed.account_ids, landed.key_ids)
            self._attribution.add(counts, landed.newest_at_ms, landed.token, self._clock())
        self.stats.blocks += len(blocks)

    def _count(self, findings: list[UnattributedEvents]) -> None:
        self.stats.findings += len(findings)
        for f in findings:
            self.stats.events_by_reason[f.reason.value] += f.events

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await off_loop_until_done(
            self._executor, fn, *args, logger=log, transient=self._transient
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
