"""The `usage_spike` rule kind, pure: a key's requests in the window against the same window
of earlier weeks (or days), judged by a robust z-score and a volume floor.

Contracts:

- The baseline is the key's `SpikeHistory.lags` (the same window d days earlier):
  the weekly lags d = 7, 14, …, 42 that exist (not None), when at least `WEEKLY_MIN` (3)
  do: the same hour of the week over 3 to 6 weeks. Otherwise the daily fallback, the lags
  d = 1 … 7 that exist, when at least `DAILY_MIN` (5) do: the same hour on 5 to 7 of
  the last days (it mixes weekdays and weekends: a weekend day may look like a drop).
  Otherwise the key is learning (`Observation.learning`), and the evidence says how
  much history there is and how much a baseline needs.
- Robust z-score: z = (current - median) / scale, scale = max(1.4826·MAD, sqrt(median +
  1), floor·median) with floor `RISE_FLOOR` (0.5) for a window above the median and
  `DROP_FLOOR` (0.2) below it. 1.4826·MAD estimates the standard deviation of normal
  data; the other two terms keep a flat or nearly flat history (three to six samples
  often look steadier than the traffic is) from turning small changes into huge scores:
  sqrt(median + 1) is about the Poisson noise of a count (1 for an idle key), the relative
  floor the ordinary spread of real traffic at one hour of the week. That spread is
  multiplicative (hour-to-hour noise of some 20-25 %, right-skewed), so it reaches much
  further above the median than below: with the default threshold 3.5 a rise needs at
  least 2.75 x the median (5 x spikes score >= 8, ordinary noise stays below), a drop a
  fall to 30 % of it or less (a holiday at weekend level stays quiet). A steady key that
  should alarm on a doubling takes a lower threshold (2); so does a drop rule on a noisy
  key, whose MAD can keep even a full stop under 3.5.
- `rule.direction`: rise -> the value is z, drop -> -z, both -> |z|. The volume floor
  `rule.min_requests` (default 50): a rise needs the window's requests at the floor, a drop
  needs the baseline's median there (3 -> 12 requests is no alarm, nor is 12 -> 3).
  `breach` = the floor is met and the value (rounded to 0.1, as shown) >= `threshold`.
- Evidence, e.g. `key_ab12 (Production web): 5,400 requests in the last 1h; the same hour
  in the last 4 weeks: 280-330 (median 300); robust z 41.2` (the range with an en dash;
  daily: `the same hour on the last 7 days: …`); z keeps its sign there (a drop shows
  `robust z -4.7` while the value of a drop rule is 4.7). Learning: `key_ab12 (…):
  learning, history since 2026-11-29 (2 of the last 7 days); a baseline needs the same
  hour on 5 of the last 7 days (3 weeks for the weekly one)`.
- No I/O and no clock: `now` is the evaluation time.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime

from alerting.ports import SPIKE_LAG_DAYS, SpikeHistory, WindowStats
from alerting.render import counted, format_duration, format_number, key_label
from alerting.state import Observation
from schemas.alerts import AlertRule, SpikeDirection
from schemas.utc import as_utc

WEEKLY_LAGS = tuple(range(7, SPIKE_LAG_DAYS + 1, 7))
"""The same hour of the week, 1 … 6 weeks earlier."""
WEEKLY_MIN = 3
DAILY_LAGS = tuple(range(1, 8))
"""The same hour on each of the last 7 days."""
DAILY_MIN = 5
MAD_TO_SD = 1.4826
RISE_FLOOR = 0.5
DROP_FLOOR = 0.2
DEFAULT_FLOOR = 50
"""The volume floor of a rule without `min_requests` (validated rules carry the default)."""
DASH = "\N{EN DASH}"


@dataclass(frozen=True, slots=True)
class Baseline:
    weekly: bool
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    def scale(self, current: int) -> float:
        """The robust spread on `current`'s side of the median (see the module docstring),
        never below 1."""
        m = self.median
        mad = statistics.median(abs(v - m) for v in self.values)
        relative = RISE_FLOOR if current >= m else DROP_FLOOR
        return max(MAD_TO_SD * mad, math.sqrt(m + 1), relative * m)

    def z(self, current: int) -> float:
        return (current - self.median) / self.scale(current)


def baseline(lags: tuple[float | None, ...]) -> Baseline | None:
    """The weekly baseline when there is one, else the daily one, else None."""
    weekly = tuple(v for d in WEEKLY_LAGS if (v := _lag(lags, d)) is not None)
    if len(weekly) >= WEEKLY_MIN:
        return Baseline(True, weekly)
    daily = tuple(v for d in DAILY_LAGS if (v := _lag(lags, d)) is not None)
    return Baseline(False, daily) if len(daily) >= DAILY_MIN else None


def _lag(lags: tuple[float | None, ...], d: int) -> float | None:
    return lags[d - 1] if d <= len(lags) else None


def _count(x: float) -> str:
    """A (possibly estimated) request count: whole, or to 0.1 below 10."""
    if x >= 10 or abs(x - round(x)) < 0.05:
        return format_number(round(x))
    return f"{x:.1f}"


def _same(window_s: int) -> str:
    return "the same hour" if window_s == 3_600 else f"the same {format_duration(window_s)}"


def evidence_text(key_id: str, spike: SpikeHistory, base: Baseline, z: float, window_s: int) -> str:
    """E.g. `key_ab12 (Production web): 5,400 requests in the last 1h; the same hour in the
    last 4 weeks: 280-330 (median 300); robust z 41.2`."""
    n = len(base.values)
    when = f"in the last {n} weeks" if base.weekly else f"on the last {n} days"
    lo, hi = min(base.values), max(base.values)
    return (
        f"{key_label(key_id, spike.name)}: {counted(spike.current, 'request')} in the last "
        f"{format_duration(window_s)}; {_same(window_s)} {when}: {_count(lo)}{DASH}{_count(hi)} "
        f"(median {_count(base.median)}); robust z {_z(z)}"
    )


def _z(z: float) -> str:
    return f"{round(z, 1) + 0.0:.1f}"  # + 0.0: no "-0.0"


def learning_text(key_id: str, spike: SpikeHistory | None, window_s: int) -> str:
    """How much history the key has and how much a baseline needs."""
    need = (
        f"a baseline needs {_same(window_s)} on {DAILY_MIN} of the last 7 days "
        f"({WEEKLY_MIN} weeks for the weekly one)"
    )
    if spike is None or spike.history_start is None:
        label = key_label(key_id, spike.name if spike else None)
        return f"{label}: learning, no requests in the last 6 weeks; {need}"
    days = sum(_lag(spike.lags, d) is not None for d in DAILY_LAGS)
    since = as_utc(spike.history_start).strftime("%Y-%m-%d")  # the first day with requests
    return (
        f"{key_label(key_id, spike.name)}: learning, history since {since} "
        f"({days} of the last 7 days); {need}"
    )


def observe_spike(
    rule: AlertRule, key_id: str, stats: WindowStats | None, now: datetime
) -> Observation:
    """One key's `usage_spike` observation at `now` (see the module docstring)."""
    window_s = rule.window_s
    spike = stats.spike if stats is not None else None
    base = baseline(spike.lags) if spike is not None else None
    if spike is None or base is None:
        current = spike.current if spike is not None else 0
        return Observation(
            None,
            sample_count=current,
            evidence=learning_text(key_id, spike, window_s),
            learning=True,
        )
    z = base.z(spike.current)
    direction = rule.direction or SpikeDirection.RISE
    floor = rule.min_requests if rule.min_requests is not None else DEFAULT_FLOOR
    rising = z >= 0 if direction is SpikeDirection.BOTH else direction is SpikeDirection.RISE
    value = round(abs(z) if direction is SpikeDirection.BOTH else (z if rising else -z), 1) + 0.0
    floor_met = spike.current >= floor if rising else base.median >= floor
    evidence = evidence_text(key_id, spike, base, z, window_s)
    if not floor_met:
        evidence += f"; below the volume floor of {counted(floor, 'request')}"
    return Observation(
        value,
        sample_count=spike.current,
        evidence=evidence,
        breach=floor_met and value >= rule.threshold,
    )
