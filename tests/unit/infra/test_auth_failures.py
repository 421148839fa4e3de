"""The brute-force tracker (`infra.http.auth_failures`) with explicit times: the delay
and block thresholds, the sliding window, the block's end and its Retry-After, the LRU
cap, sources kept apart, and the tracked source of an address."""

from __future__ import annotations

import pytest

from infra.http.auth_failures import FailureLimits, FailureTracker, Refusal, source_of

LIMITS = FailureLimits(
    before_delay=3, before_block=6, window_s=60.0, block_s=100.0, delay_step_s=0.5, max_delay_s=1.0
)
A, B = "198.51.100.1", "198.51.100.2"


def test_answers_are_slowed_past_the_delay_threshold_then_the_source_is_blocked() -> None:
    tracker = FailureTracker(LIMITS)
    delays = [tracker.failed(A, now=10.0 + i) for i in range(5)]
    # failures 1..3 at once, then 0.5 s more each, at most 1 s
    assert delays == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert tracker.blocked(A, now=15.0) is None
    assert tracker.failed(A, now=15.0) == 1.0  # the 6th: answered, and the block starts
    assert tracker.blocked(A, now=15.0) == Refusal(100)
    assert tracker.blocked(A, now=15.5) == Refusal(100)  # whole seconds, rounded up
    assert tracker.blocked(A, now=114.2) == Refusal(1)


def test_the_block_ends_after_block_s_and_the_source_starts_afresh() -> None:
    tracker = FailureTracker(LIMITS)
    for i in range(6):
        tracker.failed(A, now=float(i))
    assert tracker.blocked(A, now=104.9) is not None
    assert tracker.blocked(A, now=105.0) is None
    assert tracker.failed(A, now=105.0) == 0.0  # a fresh history: not even slowed
    assert tracker.blocked(A, now=105.0) is None


def test_failures_older_than_the_window_do_not_count() -> None:
    tracker = FailureTracker(LIMITS)
    for i in range(5):  # one short of the block, at 0, 10, .., 40 s
        tracker.failed(A, now=10.0 * i)
    # at 65 s the failure at 0 s has left the window: 5 within it, so not blocked yet
    assert tracker.failed(A, now=65.0) == 1.0
    assert tracker.blocked(A, now=65.0) is None
    assert tracker.failed(A, now=66.0) == 1.0  # the 6th within 60 s
    assert tracker.blocked(A, now=66.0) == Refusal(100)
    later = FailureTracker(LIMITS)
    for i in range(5):
        later.failed(A, now=100.0 * i)  # never more than one within 60 s
    assert later.failed(A, now=500.0) == 0.0


def test_sources_are_counted_apart() -> None:
    tracker = FailureTracker(LIMITS)
    for i in range(6):
        tracker.failed(A, now=float(i))
    assert tracker.blocked(A, now=6.0) is not None
    assert tracker.blocked(B, now=6.0) is None
    assert tracker.failed(B, now=6.0) == 0.0  # B's first failure, not A's seventh


def test_at_most_max_sources_are_remembered_least_recently_failing_first_out() -> None:
    limits = FailureLimits(before_delay=1, before_block=3, window_s=60.0, max_sources=3)
    tracker = FailureTracker(limits)
    tracker.failed("10.0.0.1", now=0.0)
    tracker.failed("10.0.0.2", now=1.0)
    tracker.failed("10.0.0.3", now=2.0)
    tracker.failed("10.0.0.1", now=3.0)  # 10.0.0.1 is now the most recent
    for i in range(100):
        tracker.failed(f"10.1.0.{i}", now=4.0 + i)
        assert len(tracker) <= 3
    assert len(tracker) == 3
    assert tracker.failed("10.0.0.1", now=200.0) == 0.0  # forgotten: a first failure again


def test_the_tracked_source_of_an_address() -> None:
    assert source_of("203.0.113.7") == "203.0.113.7"
    assert source_of(" 203.0.113.7 ") == "203.0.113.7"
    # one IPv6 host holds a whole /64
    assert source_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:2:ffff::9") == source_of("2001:db8:1:2::1")
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_of(None) == source_of("") == "unknown"
    assert source_of("testclient") == "testclient"
    assert len(source_of("x" * 10_000)) == 100


@pytest.mark.parametrize("before_block", [1, 2])
def test_small_thresholds(before_block: int) -> None:
    tracker = FailureTracker(FailureLimits(before_delay=1, before_block=before_block))
    for i in range(before_block):
        assert tracker.blocked(A, now=float(i)) is None
        tracker.failed(A, now=float(i))
    assert tracker.blocked(A, now=float(before_block)) is not None
