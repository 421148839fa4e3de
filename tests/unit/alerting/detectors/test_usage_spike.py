"""`usage_spike`, pure: the observation of hand-built histories (weekly baseline, daily
fallback, learning), the robust z-score and its floors, the directions, the volume floor,
and the evidence text."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.detectors.usage_spike import observe_spike
from alerting.ports import SPIKE_LAG_DAYS, SpikeHistory, WindowStats
from alerting.state import Condition, classify
from schemas.alerts import AlertRule

NOW = datetime(2026, 12, 1, 12, 5, 30, tzinfo=UTC)
KEY = "key_ab12"
WEEKLY = {7: 280.0, 14: 300.0, 21: 300.0, 28: 330.0}


def spike_rule(**fields: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": "spike",
        "account_id": "acc_main",
        "name": "Usage spikes",
        "scope": {"type": "account"},
        "kind": "usage_spike",
    }
    return AlertRule.model_validate(data | fields)


def history(
    current: int, lags: dict[int, float], days: int, name: str | None = "Production web"
) -> WindowStats:
    """A key with `days` days of history: lags beyond them None, the others as given (0
    where not given)."""
    values = tuple(None if d > days else lags.get(d, 0.0) for d in range(1, SPIKE_LAG_DAYS + 1))
    start = datetime(2026, 10, 1, tzinfo=UTC) if days else None
    return WindowStats(current, spike=SpikeHistory(current, values, start, name))


def test_defaults() -> None:
    rule = spike_rule()
    assert (rule.threshold, rule.window_s, rule.min_requests) == (3.5, 3_600, 50)
    assert rule.direction is not None and rule.direction.value == "rise"


def test_fires_on_a_five_fold_spike_with_the_evidence() -> None:
    obs = observe_spike(spike_rule(), KEY, history(1_500, WEEKLY, 30), NOW)
    # median 300, 1.4826 x MAD 10 = 14.8 < the rise floor 0.5 x 300 = 150: z = 8.0
    assert (obs.value, obs.breach, obs.learning, obs.sample_count) == (8.0, True, False, 1_500)
    assert obs.evidence == (
        "key_ab12 (Production web): 1,500 requests in the last 1h; the same hour in the "
        "last 4 weeks: 280\N{EN DASH}330 (median 300); robust z 8.0"
    )
    assert classify(obs, spike_rule()) is Condition.BREACH


def test_the_spread_of_a_noisy_history_is_its_mad() -> None:
    noisy = {7: 100.0, 14: 300.0, 21: 500.0, 28: 700.0, 35: 300.0}
    obs = observe_spike(spike_rule(), KEY, history(1_500, noisy, 40), NOW)
    # median 300, MAD 200 -> scale 296.5 (above the floors): z = 4.05
    assert obs.value == 4.0 and obs.breach
    assert "the same hour in the last 5 weeks: 100\N{EN DASH}700 (median 300)" in obs.evidence


def test_quiet_on_seasonal_traffic() -> None:
    """The same hour of the week over 6 weeks: weekdays ~300, weekends ~120. A Saturday
    at 130 is normal against the Saturdays (the daily lags, with their weekdays, are not
    used once there are weekly ones); so is a busy Monday at 1.6 x."""
    rng = random.Random(7)
    saturday = {d: 300.0 * rng.lognormvariate(0, 0.2) for d in range(1, 43)}
    for d in range(7, 43, 7):
        saturday[d] = 120.0 * rng.lognormvariate(0, 0.2)
    both = spike_rule(direction="both")
    obs = observe_spike(both, KEY, history(130, saturday, 42), NOW)
    assert not obs.breach and abs(obs.value or 0) < 1
    assert "in the last 6 weeks" in obs.evidence
    monday = {d: 300.0 * rng.lognormvariate(0, 0.2) for d in range(7, 43, 7)}
    assert not observe_spike(both, KEY, history(480, monday, 42), NOW).breach


def test_quiet_under_ordinary_noise_across_many_hours() -> None:
    """Bench-like noise (per-day 12 %, per-hour 22 %, lognormal), 2,000 seeded hours
    at 300 requests: no hour scores a rise of 3.5 (the rise floor holds the tail)."""
    rng = random.Random(14)

    def hour() -> float:
        return 300 * rng.lognormvariate(0, 0.12) * rng.lognormvariate(-0.0242, 0.22)

    rule = spike_rule()
    fired = 0
    for _ in range(2_000):
        lags = {d: hour() for d in range(7, 43, 7)}
        fired += bool(observe_spike(rule, KEY, history(round(hour()), lags, 42), NOW).breach)
    assert fired == 0


def test_learning_with_two_days_of_history() -> None:
    obs = observe_spike(spike_rule(), KEY, history(800, {1: 90.0, 2: 100.0}, 2), NOW)
    assert obs.learning and obs.value is None and obs.sample_count == 800
    assert obs.evidence == (
        "key_ab12 (Production web): learning, history since 2026-10-01 (2 of the last 7 "
        "days); a baseline needs the same hour on 5 of the last 7 days (3 weeks for "
        "the weekly one)"
    )
    assert classify(obs, spike_rule()) is Condition.LEARNING


def test_learning_without_any_history() -> None:
    obs = observe_spike(spike_rule(window_s="15m"), "key_new001", None, NOW)
    assert obs.learning and obs.value is None
    assert obs.evidence == (
        "key_new001: learning, no requests in the last 6 weeks; a baseline needs the same "
        "15m on 5 of the last 7 days (3 weeks for the weekly one)"
    )


@pytest.mark.parametrize("days", [10, 14])
def test_daily_fallback_before_three_weeks(days: int) -> None:
    daily = {1: 300.0, 2: 310.0, 3: 120.0, 4: 130.0, 5: 290.0, 6: 305.0, 7: 295.0}
    obs = observe_spike(spike_rule(), KEY, history(1_800, daily | {8: 1.0, 14: 1.0}, days), NOW)
    # median 295, MAD 10: z = (1800 - 295) / 147.5 = 10.2
    assert (obs.value, obs.breach) == (10.2, True)
    assert obs.evidence == (
        "key_ab12 (Production web): 1,800 requests in the last 1h; the same hour on the "
        "last 7 days: 120\N{EN DASH}310 (median 295); robust z 10.2"
    )


def test_three_weeks_make_the_weekly_baseline() -> None:
    obs = observe_spike(spike_rule(), KEY, history(300, {7: 50.0, 14: 52.0, 21: 48.0}, 21), NOW)
    assert "the same hour in the last 3 weeks: 48\N{EN DASH}52 (median 50)" in obs.evidence


def test_below_the_volume_floor_is_no_alarm() -> None:
    tiny = {7: 3.0, 14: 3.0, 21: 2.0, 28: 4.0}
    obs = observe_spike(spike_rule(), KEY, history(12, tiny, 30, name=None), NOW)
    # z = (12 - 3) / max(1.4826 x 0.5, sqrt(4) = 2, 0.5 x 3) = 4.5 >= 3.5, but 12 < 50 requests
    assert (obs.value, obs.breach) == (4.5, False)
    assert obs.evidence == (
        "key_ab12: 12 requests in the last 1h; the same hour in the last 4 weeks: "
        "2\N{EN DASH}4 (median 3); robust z 4.5; below the volume floor of 50 requests"
    )
    assert classify(obs, spike_rule()) is Condition.CLEAR
    assert observe_spike(spike_rule(min_requests=10), KEY, history(12, tiny, 30), NOW).breach


def test_flat_history_does_not_make_small_changes_infinite() -> None:
    flat = {d: 200.0 for d in range(7, 43, 7)}
    obs = observe_spike(spike_rule(direction="both"), KEY, history(230, flat, 42), NOW)
    assert obs.value == 0.3 and not obs.breach  # 30 / (0.5 x 200)


@pytest.mark.parametrize(
    ("direction", "current", "value", "breach"),
    [
        ("rise", 1_500, 8.0, True),
        ("rise", 20, -4.7, False),
        ("drop", 20, 4.7, True),  # (20 - 300) / (0.2 x 300) = -4.67
        ("drop", 1_500, -8.0, False),
        ("both", 1_500, 8.0, True),
        ("both", 20, 4.7, True),
        ("both", 250, 0.8, False),  # (250 - 300) / 60
    ],
)
def test_directions(direction: str, current: int, value: float, breach: bool) -> None:
    obs = observe_spike(spike_rule(direction=direction), KEY, history(current, WEEKLY, 30), NOW)
    assert (obs.value, obs.breach) == (value, breach)


def test_a_drop_needs_the_median_at_the_floor() -> None:
    low = {7: 40.0, 14: 42.0, 21: 38.0, 28: 40.0}
    obs = observe_spike(spike_rule(direction="drop"), KEY, history(0, low, 30), NOW)
    # (0 - 40) / max(1.4826 x 1, sqrt(41), 0.2 x 40) = -5.0: a drop of 5, but the median 40 < 50
    assert (obs.value, obs.breach) == (5.0, False)
    assert obs.evidence.endswith("robust z -5.0; below the volume floor of 50 requests")
    assert observe_spike(
        spike_rule(direction="drop", min_requests=40), KEY, history(0, low, 30), NOW
    ).breach
