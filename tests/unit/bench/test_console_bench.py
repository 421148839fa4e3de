"""`bench.console`'s pure parts: reading the sign-in form's token and the Server-Timing
header, and spreading the requests over the days."""

from __future__ import annotations

import pytest

from bench.console_data import day_events
from bench.console_http import form_token, server_ms

SIGN_IN = """<form method="post" action="/console/sign-in">
    <input type="hidden" name="csrf_token" value="Zx-81_aQ">
    <input id="signin-key" name="key" type="password"></form>"""


def test_the_sign_in_forms_token_is_found() -> None:
    assert form_token(SIGN_IN) == "Zx-81_aQ"
    assert form_token("<p>no form</p>") is None


@pytest.mark.parametrize(
    ("header", "ms"),
    [("app;dur=12.5", 12.5), ("db;dur=3, app;dur=180", 180.0), ("app;desc=x;dur=7", 7.0),
     ("app", None), ("", None), (None, None), ("cache;dur=4", None)],
)  # fmt: skip
def test_server_timing_is_read(header: str | None, ms: float | None) -> None:
    assert server_ms(header) == ms


def test_days_grow_and_add_up() -> None:
    days = day_events(1_000_003, 30)
    assert sum(days) == 1_000_003 and len(days) == 30
    assert days == sorted(days) and 1.6 < days[-1] / days[0] < 1.75
