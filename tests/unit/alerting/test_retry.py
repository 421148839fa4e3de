"""The retry schedule, Retry-After parsing and outcome classification."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from alerting.notifier import SendResult
from alerting.retry import (
    RetryAction,
    RetryPolicy,
    classify_http_status,
    classify_smtp_code,
    parse_retry_after,
)
from schemas.alerts import DeliveryOutcome

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_schedule_fast_phase_then_long_tail_up_to_a_day() -> None:
    policy = RetryPolicy()
    offsets = policy.offsets()
    assert offsets[:4] == [0, 5, 35, 155]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps[:3] == [5, 30, 120]
    assert gaps[3:7] == [600, 1200, 2400, 3600]
    assert all(g == 3600 for g in gaps[6:])
    assert offsets[-1] <= 86_400 < offsets[-1] + 3600


def test_decide_for_each_outcome() -> None:
    policy = RetryPolicy()
    first = NOW
    done = policy.decide(SendResult.delivered(), attempt=1, first_attempt_at=first, now=NOW)
    assert done.action is RetryAction.DONE
    dead = policy.decide(SendResult.permanent("400"), attempt=1, first_attempt_at=first, now=NOW)
    assert dead.action is RetryAction.DEAD_LETTER
    gone = policy.decide(
        SendResult.disable_endpoint("410"), attempt=1, first_attempt_at=first, now=NOW
    )
    assert gone.action is RetryAction.DISABLE_ENDPOINT
    again = policy.decide(SendResult.retryable("503"), attempt=2, first_attempt_at=first, now=NOW)
    assert again.action is RetryAction.RETRY
    assert again.delay_s == 30
    assert again.retry_at == NOW + timedelta(seconds=30)


def test_retry_after_is_a_lower_bound() -> None:
    policy = RetryPolicy()
    longer = policy.decide(
        SendResult.retryable("429", retry_after_s=90), attempt=1, first_attempt_at=NOW, now=NOW
    )
    assert longer.delay_s == 90
    shorter = policy.decide(
        SendResult.retryable("429", retry_after_s=1), attempt=1, first_attempt_at=NOW, now=NOW
    )
    assert shorter.delay_s == 5


def test_gives_up_after_a_day() -> None:
    policy = RetryPolicy()
    late = NOW + timedelta(hours=23, minutes=30)
    decision = policy.decide(
        SendResult.retryable("503"), attempt=30, first_attempt_at=NOW, now=late
    )
    assert decision.action is RetryAction.DEAD_LETTER
    far = policy.decide(
        SendResult.retryable("429", retry_after_s=2 * 86_400),
        attempt=1,
        first_attempt_at=NOW,
        now=NOW,
    )
    assert far.action is RetryAction.DEAD_LETTER


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay_after(0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        ("Sun, 01 Jun 2025 12:01:00 GMT", 60.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, DeliveryOutcome.DELIVERED),
        (204, DeliveryOutcome.DELIVERED),
        (301, DeliveryOutcome.PERMANENT),
        (302, DeliveryOutcome.PERMANENT),
        (307, DeliveryOutcome.PERMANENT),
        (400, DeliveryOutcome.PERMANENT),
        (401, DeliveryOutcome.PERMANENT),
        (403, DeliveryOutcome.PERMANENT),
        (404, DeliveryOutcome.PERMANENT),
        (408, DeliveryOutcome.RETRYABLE),
        (410, DeliveryOutcome.DISABLE_ENDPOINT),
        (413, DeliveryOutcome.PERMANENT),
        (422, DeliveryOutcome.PERMANENT),
        (429, DeliveryOutcome.RETRYABLE),
        (500, DeliveryOutcome.RETRYABLE),
        (502, DeliveryOutcome.RETRYABLE),
        (503, DeliveryOutcome.RETRYABLE),
        (504, DeliveryOutcome.RETRYABLE),
    ],
)
def test_classify_http_status(status: int, outcome: DeliveryOutcome) -> None:
    result = classify_http_status(status, "body", retry_after_s=7)
    assert result.outcome is outcome
    assert str(status) in result.detail
    if outcome is DeliveryOutcome.RETRYABLE:
        assert result.retry_after_s == 7


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (421, DeliveryOutcome.RETRYABLE),
        (450, DeliveryOutcome.RETRYABLE),
        (452, DeliveryOutcome.RETRYABLE),
        (550, DeliveryOutcome.PERMANENT),
        (554, DeliveryOutcome.PERMANENT),
    ],
)
def test_classify_smtp_code(code: int, outcome: DeliveryOutcome) -> None:
    assert classify_smtp_code(code, "x").outcome is outcome
