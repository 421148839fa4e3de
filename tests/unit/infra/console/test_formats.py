"""The console's one way of writing times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.console.formats import ago, until, when

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "said"),
    [
        (timedelta(seconds=59), "just now"),
        (-timedelta(seconds=3), "just now"),  # a clock a little ahead
        (timedelta(minutes=5, seconds=59), "5 min ago"),
        (timedelta(minutes=14, seconds=5), "14 min ago"),
        (timedelta(hours=3, minutes=59), "3 h ago"),
        (timedelta(hours=47), "47 h ago"),
        (timedelta(days=5), "5 days ago"),
        (timedelta(days=30), "30 days ago"),
        (timedelta(days=31), "2025-02-11"),
    ],
)
def test_ago_says_how_long_ago(age: timedelta, said: str) -> None:
    assert ago(NOW - age, NOW) == said


def test_never() -> None:
    assert ago(None, NOW) == "never"


@pytest.mark.parametrize(
    ("ahead", "said"),
    [
        (timedelta(seconds=20), "in under a minute"),
        (timedelta(minutes=15), "in 15 min"),
        (timedelta(hours=23), "in 23 h"),
        (timedelta(days=3), "in 3 days"),
    ],
)
def test_until_says_how_long_until(ahead: timedelta, said: str) -> None:
    assert until(NOW + ahead, NOW) == said


def test_when_is_utc_to_the_minute() -> None:
    assert when(datetime(2025, 6, 1, 14, 3, 59, tzinfo=UTC)) == "2025-06-01 14:03 UTC"
    assert when(None) == "—"
