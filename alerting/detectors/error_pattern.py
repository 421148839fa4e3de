"""The `error_pattern` rule kind, pure: a key's error share against its own baseline.

Contracts of `observe_error_pattern(rule, key_id, stats, now)`:

- The share is 100 · errors / requests in the window, errors being the responses of the
  rule's `status_class` (all: 4xx and 5xx; 4xx; 5xx; or one status: 401, 403, 429). It is
  the observation's value, and the window's requests its sample count, so a window with
  fewer than `min_requests` (default 20) requests is nodata.
- The baseline share is the same over the baseline: the `lookback_s` (default 7 days) of
  whole hours before the window's first hour (`projections.detector_queries.error_pattern`
  reads it; the minutes between that hour and the window's start belong to neither).
- Learning while the baseline is too thin to be the key's own: fewer than
  `BASELINE_MIN_REQUESTS` requests in it, or its first hour with requests less than
  `min(1 day, lookback_s)` before its end (a new key, or one back from silence, first
  shows what its usual share is; with a lookback under a day, the whole lookback).
- Breach (the detector's own judgement): share >= `threshold` (the absolute floor,
  default 5 %), share >= baseline share + `margin` (default 10 points), and the
  window's errors no more likely than `MAX_CHANCE` (one in a million) under the
  baseline share (`chance`, the binomial tail), so a few errors in a small window are
  not an alarm. A key that always answers with that share is quiet:
  its baseline carries it.
- A key without requests in the window (`stats` None) observes no value (nodata).
- The evidence names the key, the share, the requests and errors of the window and the
  baseline's share over its requests, e.g. `key_ab12 (Production web): 38% of 1,240
  requests in the last 15m were 401 (471); baseline over the previous 7d: 1.2% of 96,000`.
- No I/O and no clock: `now` is the evaluation time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import cast

from alerting.ports import ErrorHistory, WindowStats
from alerting.render import format_duration, format_minute, format_number, key_label
from alerting.state import Observation
from schemas.alerts import KIND_DEFAULTS, AlertRule, ErrorClass, RuleKind
from schemas.utc import as_utc

_DEFAULTS = KIND_DEFAULTS[RuleKind.ERROR_PATTERN]
DEFAULT_LOOKBACK_S = cast(int, _DEFAULTS["lookback_s"])
DEFAULT_MARGIN = float(cast(int, _DEFAULTS["margin"]))
"""For rules built without the kind's defaults (validated rules carry them)."""
BASELINE_MIN_REQUESTS = 100
"""Fewer requests over the baseline and its share says too little: learning."""
BASELINE_MIN_HISTORY_S = 86_400
"""The baseline must reach back this far (or over the whole lookback, if shorter)."""

_CLASS_WORDS = {
    ErrorClass.ALL: "4xx or 5xx",
    ErrorClass.CLIENT: "4xx",
    ErrorClass.SERVER: "5xx",
}


def error_share(errors: int, requests: int) -> float:
    """Percent of `requests` that were errors (0 without requests)."""
    return 100.0 * errors / requests if requests > 0 else 0.0


def format_share(percent: float) -> str:
    """38% (10 and above: whole percents), 1.2%, 0%."""
    tenths = round(percent, 1)
    text = f"{tenths:.0f}" if tenths >= 10 else f"{tenths:.1f}".removesuffix(".0")
    return f"{text}%"


def baseline_end(window_s: int, now: datetime) -> datetime:
    """Where the baseline ends: the hour in which the window (ending with `now`'s minute)
    starts."""
    end = as_utc(now).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return (end - timedelta(seconds=window_s)).replace(minute=0)


def _learning(rule: AlertRule, h: ErrorHistory, now: datetime) -> str | None:
    """Why the baseline is too thin to judge by (None: it is enough)."""
    lookback = rule.lookback_s or DEFAULT_LOOKBACK_S
    needs = min(BASELINE_MIN_HISTORY_S, lookback)
    span = f"{format_number(BASELINE_MIN_REQUESTS)} requests over {format_duration(needs)}"
    if h.history_start is None or h.baseline_requests <= 0:
        return f"no requests over the previous {format_duration(lookback)} (needs {span})"
    since = f"since {format_minute(h.history_start)}"
    history = (baseline_end(rule.window_s, now) - as_utc(h.history_start)).total_seconds()
    if h.baseline_requests < BASELINE_MIN_REQUESTS or history < needs:
        got = f"{format_number(h.baseline_requests)} requests {since}"
        return f"{got} over the previous {format_duration(lookback)} (needs {span})"
    return None


def evidence_text(rule: AlertRule, key_id: str, h: ErrorHistory, learning: str | None) -> str:
    """The window's share in words and numbers, then the baseline's (or why it is still
    being learnt)."""
    status_class = rule.status_class or ErrorClass.ALL
    what = _CLASS_WORDS.get(status_class, status_class.value)
    window = (
        f"{key_label(key_id, h.name)}: {format_share(error_share(h.errors, h.requests))} of "
        f"{format_number(h.requests)} requests in the last {format_duration(rule.window_s)} "
        f"were {what} ({format_number(h.errors)})"
    )
    if learning is not None:
        return f"{window}; learning the baseline: {learning}"
    lookback = format_duration(rule.lookback_s or DEFAULT_LOOKBACK_S)
    base = error_share(h.baseline_errors, h.baseline_requests)
    return (
        f"{window}; baseline over the previous {lookback}: {format_share(base)} of "
        f"{format_number(h.baseline_requests)}"
    )


def observe_error_pattern(
    rule: AlertRule, key_id: str, stats: WindowStats | None, now: datetime
) -> Observation:
    """One key's `error_pattern` observation at `now` (see the module docstring)."""
    h = stats.error_history if stats is not None else None
    if h is None or h.requests <= 0:
        quiet = f"{key_id}: no requests in the last {format_duration(rule.window_s)}"
        return Observation(None, sample_count=0, evidence=quiet)
    share = error_share(h.errors, h.requests)
    learning = _learning(rule, h, now)
    evidence = evidence_text(rule, key_id, h, learning)
    if learning is not None:
        return Observation(share, sample_count=h.requests, evidence=evidence, learning=True)
    margin = rule.margin if rule.margin is not None else DEFAULT_MARGIN
    base = error_share(h.baseline_errors, h.baseline_requests)
    breach = (
        share >= rule.threshold
        and share >= base + margin
        and chance(h.errors, h.requests, base) <= MAX_CHANCE
    )
    return Observation(share, sample_count=h.requests, evidence=evidence, breach=breach)


MAX_CHANCE = 1e-6
"""How likely the window's errors may be under the key's baseline share at most
(`chance`): a margin alone is noise in a small window (3 errors in 23 requests is 13 %,
11 points over a 1.4 % baseline, yet happens by chance about once in 250 windows)."""

MIN_BASE_SHARE = 0.5
"""The baseline share (percent) the chance is computed with at least, so a key that
never failed does not make its first errors impossible."""


def chance(errors: int, requests: int, base_share: float) -> float:
    """The probability of at least `errors` errors in `requests` requests when each fails
    with the baseline share (percent, at least `MIN_BASE_SHARE`): the binomial upper
    tail, summed in log space."""
    if errors <= 0:
        return 1.0
    p = min(max(base_share, MIN_BASE_SHARE), 99.0) / 100.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(requests + 1)
    total = 0.0
    for k in range(errors, requests + 1):
        term = log_n - math.lgamma(k + 1) - math.lgamma(requests - k + 1)
        term += k * log_p + (requests - k) * log_q
        total += math.exp(term)
        if k > requests * p and math.exp(term) < total * 1e-12:
            break  # the tail past the mode falls fast; the rest adds nothing
    return min(total, 1.0)
