"""The attribution task: landed request events the registry attributes to no account are
counted (`stats.events_by_reason`, the `keypulse_unattributed_events` metric) and
recorded in `key_anomalies`, entirely off the ingest path.

It does no work per landed block: every `interval_s` it asks the `AttributionStore` for
the running total of every unattributed (account, key) pair (which ingest's rollups
already keep), lets the pure `Attribution` decide and records the findings that grew. At
start it loads what was recorded before, so the counts go on across restarts and a
finding is never recorded twice. Several workers may run it: they record the same rows.

Transient store failures (per `transient`) are retried with backoff; any other error
ends the task through `on_bug` (by default `stop_on_bug`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from streams.worker.attribution import Attribution
from streams.worker.failures import stop_on_bug
from streams.worker.ports import AttributionStore, UnattributedEvents, UnattributedReason

log = logging.getLogger(__name__)


@dataclass
class AttributionStats:
    checks: int = 0
    """Rounds completed (each with its findings recorded)."""
    findings: int = 0
    """Findings recorded by this process."""
    waiting: int = 0
    """Unknown-key pairs within their grace after the last round."""
    events_by_reason: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((r.value for r in UnattributedReason), 0)
    )
    """Unattributed request events recorded (by any run), by reason."""


class AttributionAgent:
    """Finds and records the unattributed events that ingest landed."""

    def __init__(
        self,
        store: AttributionStore,
        grace_s: float,
        interval_s: float = 5.0,
        transient: IsTransient = io_failure,
        on_bug: Callable[[str, BaseException], None] = stop_on_bug,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._grace_s = grace_s
        self._interval_s = interval_s
        self._transient = transient
        self._on_bug = on_bug
        self._clock = clock
        self._attribution: Attribution | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-attribution")
        self.stats = AttributionStats()

    async def run(self) -> None:
        """The task body: a round every `interval_s`; a non-transient error goes to `on_bug`."""
        try:
            while True:
                await self.check()
                await asyncio.sleep(self._interval_s)
        except Exception as exc:
            self._on_bug("attribution task", exc)
            raise

    async def check(self) -> list[UnattributedEvents]:
        """One round (the first loads what was recorded); returns the findings recorded."""
        if self._attribution is None:
            recorded = await self._blocking(self._store.recorded)
            self._attribution = Attribution(self._grace_s, recorded)
        pairs = await self._blocking(self._store.unattributed)
        findings = self._attribution.decide(pairs, self._clock())
        if findings:
            await self._blocking(self._store.record, findings)
        self.stats.checks += 1
        self.stats.findings += len(findings)
        self.stats.waiting = self._attribution.waiting
        self.stats.events_by_reason = self._attribution.totals()
        return findings

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await off_loop_until_done(
            self._executor, fn, *args, logger=log, transient=self._transient
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
