"""`record()` rejects bad input with a `ValueError` naming the field, before queueing."""

from __future__ import annotations

import http
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import pytest

from schemas.request_bounds import valid_ip
from streams.client import RecorderConfig, UsageRecorder
from streams.client.usage_validation import RowValidator, occurred_at_ms
from tests.samples.streams import REQUEST

GOOD: dict[str, Any] = REQUEST


@pytest.fixture(scope="module")
def offline_recorder(silent_bootstrap: str) -> Iterator[UsageRecorder]:
    """A recorder whose broker never answers (nothing listens on the port)."""
    recorder = UsageRecorder(
        RecorderConfig(
            bootstrap_servers=silent_bootstrap,
            topic="t.keypulse.requests",
            connect_timeout_ms=200,
        )
    )
    yield recorder
    recorder.close(0.1)


BAD_CASES: list[tuple[str, Any]] = [
    ("key_id", "pk_live_abc123"),
    ("key_id", "key_ab"),
    ("key_id", None),
    ("key_id", ["key_abc123"]),
    ("account_id", "acc_a"),
    ("account_id", b"acc_abc"),
    ("method", "get"),
    ("method", "TRACE"),
    ("method", {"GET"}),
    ("route", ""),
    ("route", "r" * 513),
    ("route", 5),
    ("route", "/v1/\ud800"),  # a lone surrogate: JSON cannot carry it
    ("status", 99),
    ("status", 600),
    ("status", True),
    ("status", 200.5),
    ("status", "200"),
    ("latency_ms", -1),
    ("latency_ms", float("nan")),
    ("latency_ms", float("inf")),
    ("latency_ms", 3_600_001),
    ("latency_ms", "12"),
    ("latency_ms", False),
    ("client_ip", "256.0.0.1"),
    ("client_ip", "localhost"),
    ("client_ip", "1.2.3.4/32"),
    ("client_ip", 16909060),
    ("client_ip", ["1.2.3.4"]),
    ("client_ip", "fe80::1%eth0"),  # a zone id
    ("bytes_out", -1),
    ("bytes_out", 2**32),
    ("bytes_out", 1.5),
    ("bytes_out", True),
    ("is_render", 1),
    ("is_render", "true"),
    ("watermarked", None),
    ("occurred_at", datetime(2026, 1, 1)),  # naive
    ("occurred_at", 1_000),  # 1970
    ("occurred_at", 1.7e12 + 0.5),
    ("occurred_at", "2026-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("field", "value"), BAD_CASES, ids=lambda v: repr(v)[:30])
def test_bad_field_is_named(offline_recorder: UsageRecorder, field: str, value: Any) -> None:
    before = offline_recorder.stats().recorded
    with pytest.raises(ValueError, match=rf"^{field}: "):
        offline_recorder.record(**{**GOOD, field: value})
    assert offline_recorder.stats().recorded == before


def test_bad_value_after_a_cached_good_one(offline_recorder: UsageRecorder) -> None:
    before = offline_recorder.stats().recorded
    offline_recorder.record(**GOOD)
    with pytest.raises(ValueError, match=r"^status: "):
        offline_recorder.record(**{**GOOD, "status": 700})
    assert offline_recorder.stats().recorded == before + 1


class Status(IntEnum):
    OK = 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", Status.OK),
        ("status", http.HTTPStatus.NOT_FOUND),
        ("method", http.HTTPMethod.PATCH),
        ("latency_ms", 0),
        ("latency_ms", 3_600_000),
        ("client_ip", "2001:db8::1"),
        ("client_ip", "::ffff:1.2.3.4"),
        ("bytes_out", 2**32 - 1),
        ("bytes_out", 1.0),  # an integer-valued float is an integer (JSON Schema's rule)
        ("status", 200.0),
        ("occurred_at", 1.7e12),
        ("occurred_at", datetime(2026, 1, 1, tzinfo=UTC)),
        ("occurred_at", 1_768_469_400_123),
        ("route", "é" * 512),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_good_values_are_queued(offline_recorder: UsageRecorder, field: str, value: Any) -> None:
    before = offline_recorder.stats().recorded
    offline_recorder.record(**{**GOOD, field: value})
    assert offline_recorder.stats().recorded == before + 1


def test_normalize_turns_enums_into_plain_values() -> None:
    fields = RowValidator().normalize(
        "key_abc123", "acc_abc", http.HTTPMethod.GET, "/", Status.OK, 1, "1.2.3.4", 0, False, False
    )
    assert type(fields[2]) is str
    assert type(fields[4]) is int


def test_normalize_turns_integer_valued_floats_into_ints() -> None:
    fields = RowValidator().normalize(
        "key_abc123", "acc_abc", "GET", "/", 404.0, 1.0, "1.2.3.4", 10.0, False, False
    )
    assert (fields[4], fields[7]) == (404, 10)
    assert type(fields[4]) is int and type(fields[7]) is int
    assert occurred_at_ms(1.7e12) == 1_700_000_000_000
    assert type(occurred_at_ms(1.7e12)) is int


def test_normalize_remembers_good_ids() -> None:
    validator = RowValidator()
    validator.normalize("key_abc123", "acc_abc", "GET", "/", 200, 1, "1.2.3.4", 0, False, False)
    assert "key_abc123" in validator.keys
    assert "acc_abc" in validator.accounts
    assert "1.2.3.4" in validator.ips


def test_occurred_at_conversion() -> None:
    when = datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=UTC)
    assert occurred_at_ms(when) == 1_768_469_400_123
    assert occurred_at_ms(1_768_469_400_123) == 1_768_469_400_123


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1.2.3.4", True), ("fe80::1%eth0", False), ("1.2.3.04", False), ("", False), ("::", True)],
)
def test_valid_ip(value: str, ok: bool) -> None:
    assert valid_ip(value) is ok
