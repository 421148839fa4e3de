"""The brute-force limit's counts in `/metrics` (`keypulse_auth_failures`): the app's
throttles' totals added to each snapshot of the serving worker's counters."""

from __future__ import annotations

import dataclasses

from infra.http.auth_throttle import AuthThrottle
from infra.http.context import ApiRuntime
from infra.http.metrics import MetricsSnapshot

__all__ = ["with_auth_counts"]


def with_auth_counts(runtime: ApiRuntime, throttles: dict[str, AuthThrottle]) -> ApiRuntime:
    """`runtime` whose snapshot also carries the counts of `throttles` (by their label)."""
    worker = runtime.snapshot

    async def snapshot() -> MetricsSnapshot:
        snap = await worker()
        for by, throttle in throttles.items():
            for outcome, count in throttle.counts.as_dict().items():
                snap.auth_failures[(by, outcome)] = count
        return snap

    return dataclasses.replace(runtime, snapshot=snapshot)
