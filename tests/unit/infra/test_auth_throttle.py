"""The throttle's waits (`infra.http.auth_throttle`): slowed answers wait on the loop, and
at most `MAX_WAITING` of them wait at once: beyond that a failure is refused at once
(429, Retry-After 1) rather than answered early."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from infra.http.auth import AuthError, Caller, throttled
from infra.http.auth_failures import FailureLimits
from infra.http.auth_throttle import MAX_WAITING, AuthThrottle, TooManyFailures
from schemas.keys import KeyAccess


async def test_at_most_max_waiting_answers_wait_at_once() -> None:
    limits = FailureLimits(before_delay=1, before_block=1000, delay_step_s=0.05, max_delay_s=0.1)
    throttle = AuthThrottle(limits)
    await throttle.failed("198.51.100.1")  # the first failure: no wait
    extra = 10
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(throttle.failed("198.51.100.1") for _ in range(MAX_WAITING + extra)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    refused = [o for o in outcomes if isinstance(o, TooManyFailures)]
    assert len(refused) == extra and all(r.retry_after_s == 1 for r in refused)
    assert [o for o in outcomes if o is not None and o not in refused] == []
    assert 0.1 <= elapsed < 1.0  # they waited together, not one after the other
    counts = throttle.counts
    assert (counts.failed, counts.slowed, counts.refused) == (
        1 + MAX_WAITING + extra,
        MAX_WAITING,
        extra,
    )
    await throttle.failed("198.51.100.1")  # the waits are over: a slot is free again
    assert throttle.counts.slowed == MAX_WAITING + 1


def test_a_blocked_address_is_refused_with_the_seconds_left() -> None:
    now = [1000.0]
    throttle = AuthThrottle(
        FailureLimits(before_delay=5, before_block=2, block_s=30.0), clock=lambda: now[0]
    )
    throttle.record("2001:db8::1")
    throttle.record("2001:db8::2")  # the same /64
    with pytest.raises(TooManyFailures) as refused:
        throttle.check("2001:db8::3")
    assert refused.value.retry_after_s == 30
    assert "2001:db8::/64" in refused.value.detail
    throttle.check("2001:db9::1")  # another /64: not blocked
    now[0] += 30
    throttle.check("2001:db8::1")  # the block is over


async def test_a_success_between_guesses_resets_nothing() -> None:
    """A valid key (say, the guesser's own) interleaved with guesses through `throttled`
    neither clears the count nor stops the block."""
    limits = FailureLimits(before_delay=2, before_block=5, delay_step_s=0.001)
    throttle, address = AuthThrottle(limits), "198.51.100.9"
    me = Caller("key_mine", "acc_mine", KeyAccess.ADMIN)

    def guess() -> Caller:
        raise AuthError(401, "invalid_api_key", "unknown API key", guess=True)

    async def attempt(ok: bool) -> None:
        with contextlib.suppress(AuthError):
            assert await throttled(throttle, address, (lambda: me) if ok else guess) is me

    for ok in (False, False, True, False, True, False):
        await attempt(ok)
    assert (throttle.counts.failed, throttle.counts.slowed) == (4, 2)
    await attempt(False)  # the fifth guess: blocked from now on
    with pytest.raises(TooManyFailures):
        await attempt(True)
