"""`error_pattern`, pure: a key's error share of a status class against its own baseline
(fires on a burst, quiet at its usual share and below the floor, nodata below
`min_requests`, learning on a thin baseline, each class, the evidence exact), and one
evaluation cycle to a notification that carries the evidence."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.detectors.error_pattern import (
    baseline_end,
    chance,
    format_share,
    observe_error_pattern,
)
from alerting.evaluation import evaluate
from alerting.planning import QueryAnswer, plan_queries
from alerting.ports import ErrorHistory, QueryOptions, WindowStats
from alerting.state import Condition, Observation, classify
from schemas.alerts import AlertRule, ErrorClass, NotificationKind, RuleKind

NOW = datetime(2026, 12, 1, 12, 7, 30, tzinfo=UTC)
"""A 15m window is 11:53-12:08; its baseline ends at 11:00."""
WEEK_AGO = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
KEY = "key_ab12cd"
BURST = ErrorHistory(1_240, 471, 96_000, 1_152, WEEK_AGO, "Production web")
"""38% of the window's requests were errors, against 1.2% over the week before."""


def pattern_rule(**fields: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": "errors",
        "account_id": "acc_main",
        "name": "Unusual 401s",
        "scope": {"type": "account"},
        "kind": "error_pattern",
        "status_class": "401",
    }
    return AlertRule.model_validate(data | fields)


def observe(history: ErrorHistory | None, **fields: Any) -> Observation:
    stats = None if history is None else WindowStats(history.requests, error_history=history)
    return observe_error_pattern(pattern_rule(**fields), KEY, stats, NOW)


def judge(history: ErrorHistory | None, **fields: Any) -> Condition:
    return classify(observe(history, **fields), pattern_rule(**fields))


def history(requests: int, errors: int, b_requests: int, b_errors: int) -> ErrorHistory:
    return ErrorHistory(requests, errors, b_requests, b_errors, WEEK_AGO, "Production web")


# --------------------------------------------------------------------------- the rule


def test_defaults() -> None:
    rule = pattern_rule(status_class=None)
    assert (rule.threshold, rule.window_s, rule.margin) == (5.0, 900, 10.0)
    assert (rule.status_class, rule.lookback_s, rule.effective_min_requests) == (
        ErrorClass.ALL,
        7 * 86_400,
        20,
    )
    assert baseline_end(900, NOW) == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    # An hour-aligned window start leaves no gap: the baseline ends where the window starts.
    at_hour = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert baseline_end(3_600, NOW.replace(minute=59)) == at_hour


# --------------------------------------------------------------------------- judgement


def test_an_error_burst_fires_with_the_share_as_value_and_the_evidence() -> None:
    obs = observe(BURST)
    assert obs == Observation(
        100 * 471 / 1_240,
        sample_count=1_240,
        evidence=(
            "key_ab12cd (Production web): 38% of 1,240 requests in the last 15m were 401 "
            "(471); baseline over the previous 7d: 1.2% of 96,000"
        ),
        breach=True,
    )
    assert classify(obs, pattern_rule()) is Condition.BREACH


def test_a_key_that_always_has_that_share_is_quiet() -> None:
    usual = history(1_240, 471, 96_000, 34_000)  # 38% now, 35.4% all week
    assert judge(usual) is Condition.CLEAR
    assert observe(usual).evidence.endswith("baseline over the previous 7d: 35% of 96,000")
    # The same share against a clean baseline fires; exactly at baseline + margin too.
    assert judge(history(1_240, 471, 96_000, 0)) is Condition.BREACH
    assert judge(history(1_000, 150, 10_000, 500)) is Condition.BREACH  # 15% = 5% + 10
    assert judge(history(1_000, 149, 10_000, 500)) is Condition.CLEAR


def test_a_few_errors_in_a_small_window_are_not_unlikely_enough() -> None:
    # 3 of 23 is 13%, 11.6 points over a 1.4% baseline, but happens about once in 250.
    exact = sum(
        math.comb(23, k) * 0.014**k * 0.986 ** (23 - k) for k in range(3, 24)
    )  # the binomial tail computed directly
    assert chance(3, 23, 1.4) == pytest.approx(exact, rel=1e-9)
    assert 1e-3 < exact < 1e-2
    assert judge(history(23, 3, 7_428, 104)) is Condition.CLEAR
    assert judge(history(23, 9, 7_428, 104)) is Condition.BREACH  # 39%: about 1e-11
    # A key that never failed is judged against MIN_BASE_SHARE, not against zero.
    assert chance(2, 20, 0.0) == pytest.approx(chance(2, 20, 0.5))
    assert judge(history(20, 3, 50_000, 0)) is Condition.CLEAR  # 15%, but p = 1.1e-3
    assert judge(history(40, 12, 50_000, 0)) is Condition.BREACH
    assert chance(0, 10, 5.0) == 1.0


def test_below_the_absolute_floor_is_quiet_whatever_the_margin() -> None:
    clean = history(1_000, 40, 100_000, 0)  # 4% now, never before
    assert judge(clean, margin=0) is Condition.CLEAR
    assert judge(replace(clean, errors=50), margin=0) is Condition.BREACH  # 5%: the floor
    assert judge(replace(clean, errors=50), margin=0, threshold=20) is Condition.CLEAR


def test_fewer_requests_than_min_requests_is_nodata() -> None:
    few = history(19, 19, 96_000, 100)
    assert judge(few) is Condition.NODATA
    assert judge(replace(few, requests=20, errors=20)) is Condition.BREACH
    assert judge(replace(few, requests=49, errors=49), min_requests=50) is Condition.NODATA


def test_no_requests_in_the_window_observes_no_value() -> None:
    obs = observe(None)
    assert obs == Observation(None, evidence="key_ab12cd: no requests in the last 15m")
    assert classify(obs, pattern_rule()) is Condition.NODATA


@pytest.mark.parametrize(
    ("baseline", "fields", "learning"),
    [
        (replace(BURST, baseline_requests=99, baseline_errors=0), {}, True),
        (replace(BURST, baseline_requests=100, baseline_errors=0), {}, False),
        (replace(BURST, history_start=datetime(2026, 11, 30, 11, 1, tzinfo=UTC)), {}, True),
        (replace(BURST, history_start=datetime(2026, 11, 30, 11, 0, tzinfo=UTC)), {}, False),
        (replace(BURST, baseline_requests=0, baseline_errors=0, history_start=None), {}, True),
        # A lookback under a day needs the whole lookback: 2h back from 11:00.
        (
            replace(BURST, history_start=datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
            {"lookback_s": "2h"},
            False,
        ),
        (
            replace(BURST, history_start=datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
            {"lookback_s": "2h"},
            True,
        ),
    ],
)
def test_a_thin_baseline_is_learning(
    baseline: ErrorHistory, fields: dict[str, Any], learning: bool
) -> None:
    obs = observe(baseline, **fields)
    assert obs.learning is learning
    assert classify(obs, pattern_rule(**fields)) is (
        Condition.LEARNING if learning else Condition.BREACH
    )


def test_learning_evidence_says_what_the_baseline_lacks() -> None:
    young = replace(
        BURST, baseline_requests=40, history_start=datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    )
    assert observe(young).evidence == (
        "key_ab12cd (Production web): 38% of 1,240 requests in the last 15m were 401 (471); "
        "learning the baseline: 40 requests since 2026-12-01 03:00 UTC over the previous 7d "
        "(needs 100 requests over 1d)"
    )
    new = replace(BURST, baseline_requests=0, baseline_errors=0, history_start=None, name=None)
    assert observe(new, lookback_s="3d").evidence == (
        "key_ab12cd: 38% of 1,240 requests in the last 15m were 401 (471); learning the "
        "baseline: no requests over the previous 3d (needs 100 requests over 1d)"
    )


@pytest.mark.parametrize(
    ("status_class", "words"),
    [
        ("all", "4xx or 5xx"),
        ("4xx", "4xx"),
        ("5xx", "5xx"),
        ("401", "401"),
        ("403", "403"),
        ("429", "429"),
    ],
)
def test_each_class_is_judged_and_named(status_class: str, words: str) -> None:
    burst = history(2_000, 300, 50_000, 500)  # 15% against 1%
    obs = observe(burst, status_class=status_class, window_s="1h", lookback_s="14d")
    assert obs.evidence == (
        f"key_ab12cd (Production web): 15% of 2,000 requests in the last 1h were {words} "
        "(300); baseline over the previous 14d: 1% of 50,000"
    )
    assert classify(obs, pattern_rule(status_class=status_class)) is Condition.BREACH


@pytest.mark.parametrize(
    ("percent", "text"),
    [
        (0.0, "0%"),
        (0.04, "0%"),
        (1.2, "1.2%"),
        (5.0, "5%"),
        (9.96, "10%"),
        (9.94, "9.9%"),
        (37.98, "38%"),
    ],
)
def test_shares_are_written_short(percent: float, text: str) -> None:
    assert format_share(percent) == text


# --------------------------------------------------------------------------- one cycle


def test_a_cycle_fires_with_the_evidence_then_resolves() -> None:
    rule = pattern_rule()
    [query] = plan_queries([rule])
    options = QueryOptions(7 * 86_400, status_class=ErrorClass.UNAUTHORIZED)
    assert (query.kind, query.window_s, query.options) == (RuleKind.ERROR_PATTERN, 900, options)
    qkey = (RuleKind.ERROR_PATTERN, 900, options)
    hot = {("acc_main", KEY): WindowStats(1_240, 471, error_history=BURST)}
    fired = evaluate(NOW, [rule], {qkey: QueryAnswer.of(hot)}, {}, {})
    [n] = fired.notifications({KEY: "Production web"})
    assert (n.state, n.threshold) == (NotificationKind.FIRING, 5.0)
    assert n.value == pytest.approx(37.98, abs=0.01)
    assert n.evidence.startswith("key_ab12cd (Production web): 38% of 1,240 requests")

    later = NOW + timedelta(minutes=15)
    calm = replace(BURST, errors=12)
    quiet = {("acc_main", KEY): WindowStats(1_240, 12, error_history=calm)}
    instances = {"errors": {KEY: next(iter(fired.changed.values()))}}
    resolved = evaluate(later, [rule], {qkey: QueryAnswer.of(quiet)}, instances, {})
    [r] = resolved.notifications({KEY: "Production web"})
    assert r.state is NotificationKind.RESOLVED
    assert "1% of 1,240 requests" in r.evidence
