"""The evaluator's clock: it follows the ingest watermark and advances alone only when idle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.eval_clock import EvaluationClock

T0 = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)


def test_clock_follows_watermark_and_advances_only_when_idle_and_caught_up() -> None:
    clock = EvaluationClock(idle_advance_s=10)
    wall = T0
    assert clock.now(wall, caught_up=False) is None
    clock.landed(T0 - timedelta(seconds=2), wall)
    assert clock.now(wall, caught_up=True) == T0 - timedelta(seconds=2)
    later = wall + timedelta(seconds=30)
    assert clock.now(later, caught_up=False) == T0 - timedelta(seconds=2)  # data may be late
    assert clock.now(later, caught_up=True) == later - timedelta(seconds=10)
    clock.landed(T0, later)  # an older watermark never moves the clock back
    assert clock.now(later, caught_up=True) == later - timedelta(seconds=10)


def test_clock_is_capped_at_wall_time_and_never_goes_below_its_floor() -> None:
    future = EvaluationClock(idle_advance_s=10)
    future.landed(T0 + timedelta(hours=1), T0)
    assert future.now(T0, caught_up=False) == T0  # capped at wall time

    restored = EvaluationClock(idle_advance_s=10)
    restored.raise_floor(T0 + timedelta(minutes=5))  # a restored instance's last transition
    restored.landed(T0, T0)
    assert restored.now(T0 + timedelta(minutes=1), caught_up=False) == T0 + timedelta(minutes=5)
