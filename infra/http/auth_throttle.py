"""The brute-force limit on the app's credentials: a `FailureTracker`
(`infra.http.auth_failures`) over a monotonic clock, the waits of slowed answers, and
the 429 refusals (`TooManyFailures`, answered as problem+json with `Retry-After` by
`infra.http.problems`).

One `AuthThrottle` counts the failed authentications by the request's source address
(`request.client.host`): bad Bearer keys on the management API, bad keys at the
console's sign-in, bad service tokens on `POST /verify`. `POST /verify` has a second
one over the `client_ip` of the body for the keys it verifies (see
`infra.http.routes.verify`). The app runs behind no trusted proxy handling, so
`X-Forwarded-For` is never read: it is whatever the client wants it to be.

A slowed answer waits with `asyncio.sleep` (the loop keeps serving); at most
`MAX_WAITING` answers wait at once, and a failure beyond that is refused at once
(429, `Retry-After: 1`) rather than answered early, so many connections can neither
tie the server up nor skip the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.http.auth_failures import FailureLimits, FailureTracker, Refusal, source_of
from infra.settings import ApiSettings

__all__ = ["AuthThrottle", "ThrottleCounts", "TooManyFailures", "limits_of"]

MAX_WAITING = 64


class TooManyFailures(Exception):
    """429: too many failed authentications from `source` lately."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass
class ThrottleCounts:
    """Totals since the app started (the `keypulse_auth_failures` metric)."""

    failed: int = 0
    slowed: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"failed": self.failed, "slowed": self.slowed, "refused": self.refused}


def limits_of(api: ApiSettings) -> FailureLimits:
    return FailureLimits(
        before_delay=api.auth_failures_before_delay,
        before_block=api.auth_failures_before_block,
        window_s=api.auth_failure_window_s,
        block_s=api.auth_block_s,
    )


@dataclass
class AuthThrottle:
    """Failed attempts by source address; `what` says what failed in refusals, with
    `{source}` for the source."""

    limits: FailureLimits = field(default_factory=FailureLimits)
    what: str = "failed authentications from {source}"
    clock: Callable[[], float] = time.monotonic
    counts: ThrottleCounts = field(default_factory=ThrottleCounts)

    def __post_init__(self) -> None:
        self._tracker = FailureTracker(self.limits)
        self._waiting = 0

    @classmethod
    def of(
        cls, api: ApiSettings, what: str = "failed authentications from {source}"
    ) -> AuthThrottle:
        return cls(limits_of(api), what)

    def check(self, address: str | None) -> None:
        """Raise `TooManyFailures` while the source of `address` is blocked (nothing to
        parse or look up while no source is)."""
        if not self._tracker.blocking:
            return
        source = source_of(address)
        refusal = self._tracker.blocked(source, self.clock())
        if refusal is not None:
            self.counts.refused += 1
            raise self._refused(source, refusal)

    def record(self, address: str | None) -> float:
        """Count a failure of `address`'s source; the seconds its answer should wait."""
        self.counts.failed += 1
        return self._tracker.failed(source_of(address), self.clock())

    async def failed(self, address: str | None) -> None:
        """Count a failure and wait as long as the source's answers are slowed (refused
        with 429 when `MAX_WAITING` answers already wait)."""
        delay = self.record(address)
        if delay <= 0:
            return
        if self._waiting >= MAX_WAITING:
            self.counts.refused += 1
            raise self._refused(source_of(address), Refusal(1))
        self.counts.slowed += 1
        self._waiting += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._waiting -= 1

    def _refused(self, source: str, refusal: Refusal) -> TooManyFailures:
        what = self.what.format(source=source)
        return TooManyFailures(
            f"too many {what} lately: retry in "
            f"{refusal.retry_after_s} s (see Retry-After); valid keys used from other "
            "addresses are not affected",
            refusal.retry_after_s,
        )
