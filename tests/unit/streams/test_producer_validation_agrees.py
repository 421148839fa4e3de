"""The library's validator and the worker's agree on every row, accepted or rejected.

Rows are generated field by field: mostly valid values, sometimes a near miss (a bound
plus or minus one, a wrong type, a malformed id or address, text JSON cannot carry).
For each row:

- the library's verdict: `UsageRecorder.record()` (fast path, with its caches warmed
  by the row's own ids and address) and `RowValidator.normalize` + `occurred_at_ms`
  (the slow path), which must agree with each other;
- the worker's verdict: `validate_columns` on the row as a JSON batch of one, the body
  the worker decodes; and the pydantic `RequestColumns` model, strict, on the same JSON.

All must agree. A row JSON cannot encode never reaches the worker, so the library must
reject it. A row the library accepts must also survive the real wire path: packed by
`pack_rows` and decoded by `decode_requests` with the values the library queued.
"""

from __future__ import annotations

import contextlib
import http
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.codec import decode_requests
from schemas.errors import InvalidMessage
from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.request_bounds import (
    HTTP_METHODS,
    MAX_BYTES_OUT,
    MAX_LATENCY_MS,
    MAX_OCCURRED_MS,
    MAX_ROUTE_LENGTH,
    MIN_OCCURRED_MS,
)
from schemas.request_columns import COLUMNS, validate_columns
from schemas.requests import RequestColumns
from streams.client import RecorderConfig, UsageRecorder
from streams.client.batch_packer import pack_rows
from streams.client.usage_validation import RowValidator, occurred_at_ms
from tests.eventually import eventually_sync
from tests.samples.streams import REQUEST

FIELDS = COLUMNS[1:]  # the row as the library queues it: occurred_at_ms first
ARGS = FIELDS[1:]  # record()'s positional fields, in order
EVENT_ID = "0194b5a3-1f25-7abc-8def-0123456789a5"
NOW_MS = 1_768_469_400_123

GOOD: dict[str, Any] = {
    "occurred_at_ms": NOW_MS,
    **REQUEST,
    "bytes_out": 0,
    "is_render": False,
    "watermarked": False,
}

_text = st.text(st.characters(exclude_categories=()), max_size=8)  # lone surrogates too
_not_text = st.sampled_from([None, 5, True, 1.5])

VALID: dict[str, st.SearchStrategy[Any]] = {
    "occurred_at_ms": st.integers(MIN_OCCURRED_MS, MAX_OCCURRED_MS),
    "key_id": st.from_regex(KEY_ID_PATTERN, fullmatch=True),
    "account_id": st.from_regex(ACCOUNT_ID_PATTERN, fullmatch=True),
    "method": st.sampled_from(sorted(HTTP_METHODS)) | st.just(http.HTTPMethod.POST),
    "route": st.text(min_size=1, max_size=MAX_ROUTE_LENGTH)
    | st.sampled_from(["/", "r" * MAX_ROUTE_LENGTH, "\u00e9" * MAX_ROUTE_LENGTH]),
    "status": st.integers(100, 599) | st.just(http.HTTPStatus.NOT_FOUND),
    "latency_ms": st.floats(0, MAX_LATENCY_MS)
    | st.integers(0, MAX_LATENCY_MS)
    | st.sampled_from([0, -0.0, MAX_LATENCY_MS, float(MAX_LATENCY_MS)]),
    "client_ip": st.ip_addresses().map(str) | st.sampled_from(["::ffff:1.2.3.4", "2001:DB8::1"]),
    "bytes_out": st.integers(0, MAX_BYTES_OUT) | st.sampled_from([0, MAX_BYTES_OUT]),
    "is_render": st.booleans(),
    "watermarked": st.booleans(),
}

NEAR_MISS: dict[str, st.SearchStrategy[Any]] = {
    "occurred_at_ms": st.sampled_from(
        [MIN_OCCURRED_MS - 1, MAX_OCCURRED_MS + 1, 0, -1, 1.7e12, True, "1768469400123", 2**64]
    )
    | st.integers(),
    "key_id": st.sampled_from(
        ["key_abcde", "key_" + "Z" * 65, "key_abc-123", "Key_abc123", "key_abc123\n", ""]
    )
    | _text
    | _not_text,
    "account_id": st.sampled_from(["acc_ab", "acc_a b c", "ACC_abc", "acc_\u00e9bc"])
    | _text
    | _not_text,
    "method": st.sampled_from(["get", "TRACE", "", " GET", http.HTTPMethod.TRACE]) | _not_text,
    "route": st.sampled_from(["", "r" * (MAX_ROUTE_LENGTH + 1), "/\ud800", "\udfff"])
    | _text
    | _not_text,
    "status": st.sampled_from([99, 600, 200.0, "200", True, None]) | st.integers(),
    "latency_ms": st.sampled_from(
        [-1, -0.001, MAX_LATENCY_MS + 1, MAX_LATENCY_MS + 1e-6, float("nan"), float("inf")]
    )
    | st.sampled_from(["12", True, None])
    | st.floats(),
    "client_ip": st.sampled_from(
        [
            *("256.1.1.1", "1.2.3.04", "1.2.3", " 1.2.3.4", "1.2.3.4/32", "::g", "1.2.3.4\x00"),
            *("", "fe80::1%eth0", "fe80::1%1"),
        ]
    )
    | _text
    | st.sampled_from([16909060, None]),
    "bytes_out": st.sampled_from([-1, MAX_BYTES_OUT + 1, 2**64, 1.0, "10", False, None]),
    "is_render": st.sampled_from([0, 1, "true", None]),
    "watermarked": st.sampled_from([0, "false", None]),
}


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """One row: each field valid 9 times in 10, else a near miss."""
    return {
        name: draw(VALID[name] if draw(st.integers(0, 9)) else NEAR_MISS[name]) for name in FIELDS
    }


def _slow_path(row: dict[str, Any]) -> tuple[Any, ...] | None:
    """The library's full checks: the queued row, or None when rejected."""
    try:
        ms = occurred_at_ms(row["occurred_at_ms"])
        return (ms, *RowValidator().normalize(*(row[name] for name in ARGS)))
    except ValueError:
        return None


def _wire_body(row: dict[str, Any]) -> bytes | None:
    """The row as the JSON columns of a batch of one, or None when JSON cannot carry it."""
    try:
        return orjson.dumps({"event_id": [EVENT_ID], **{name: [row[name]] for name in FIELDS}})
    except orjson.JSONEncodeError:
        return None


def _worker_accepts(body: bytes) -> bool:
    try:
        validate_columns(orjson.loads(body))
    except InvalidMessage:
        return False
    return True


def _model_accepts(body: bytes) -> bool:
    try:
        RequestColumns.model_validate_json(body, strict=True)
    except ValidationError:
        return False
    return True


class _Unreachable(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or record.getMessage().startswith("Kafka unreachable")


@pytest.fixture(scope="module")
def recorder(silent_bootstrap: str) -> Iterator[UsageRecorder]:
    """A recorder whose broker never answers: accepted rows only count as recorded.

    It tries to connect once, then not for an hour: kafka-python's reconnects draw from
    `random`, which Hypothesis forbids while it generates examples.
    """
    handler = _Unreachable()
    logger = logging.getLogger("streams.client")
    logger.addHandler(handler)
    try:
        recorder = UsageRecorder(
            RecorderConfig(
                bootstrap_servers=silent_bootstrap,
                topic="t.keypulse.requests",
                connect_timeout_ms=200,
                reconnect_backoff_ms=3_600_000,
                close_timeout_s=0.1,
            )
        )
        eventually_sync(lambda: handler.seen, 30, "the first connection attempt to fail")
    finally:
        logger.removeHandler(handler)
    with recorder:
        yield recorder


def _args(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in ARGS}


def _record_accepts(recorder: UsageRecorder, row: dict[str, Any]) -> bool:
    """`record()` with the row's ids and address already cached (the fast path's chance)."""
    for name in ("key_id", "account_id", "client_ip"):
        with contextlib.suppress(ValueError):
            recorder.record(**{**_args(GOOD), name: row[name]}, occurred_at=NOW_MS)
    before = recorder.stats().recorded
    try:
        recorder.record(**_args(row), occurred_at=row["occurred_at_ms"])
    except ValueError:
        assert recorder.stats().recorded == before
        return False
    assert recorder.stats().recorded == before + 1
    return True


def _check(recorder: UsageRecorder, row: dict[str, Any]) -> None:
    queued = _slow_path(row)
    assert _record_accepts(recorder, row) == (queued is not None), row
    body = _wire_body(row)
    if body is None:
        assert queued is None, f"the library accepted a row JSON cannot carry: {row!r}"
        return
    worker = _worker_accepts(body)
    assert worker == _model_accepts(body), row
    assert (queued is not None) == worker, row
    if queued is not None:
        decoded = decode_requests(pack_rows([queued], NOW_MS).value)
        assert decoded.count == 1
        assert tuple(decoded.columns[name][0] for name in FIELDS) == queued


@settings(max_examples=1500, deadline=None)
@given(rows())
def test_library_and_worker_agree(recorder: UsageRecorder, row: dict[str, Any]) -> None:
    _check(recorder, row)


NEAR_MISSES = [
    ("route", "/\ud800"),  # a lone surrogate: orjson cannot encode it
    ("route", "r" * (MAX_ROUTE_LENGTH + 1)),
    ("client_ip", "1.2.3.4\x00"),
    ("client_ip", "1.2.3.04"),
    ("occurred_at_ms", MIN_OCCURRED_MS - 1),
    ("occurred_at_ms", MAX_OCCURRED_MS + 1),
    ("bytes_out", MAX_BYTES_OUT + 1),
    ("latency_ms", MAX_LATENCY_MS + 1e-6),
    ("latency_ms", float("nan")),
    ("status", 600),
    ("method", http.HTTPMethod.TRACE),
    ("client_ip", "fe80::1%eth0"),  # an IPv6 zone id
    ("status", 200.5),
    ("bytes_out", 1.5),
]
ACCEPTED = [
    ("method", http.HTTPMethod.GET),
    ("status", http.HTTPStatus.OK),
    ("route", "\u00e9" * MAX_ROUTE_LENGTH),
    ("occurred_at_ms", MIN_OCCURRED_MS),
    ("occurred_at_ms", MAX_OCCURRED_MS),
    ("bytes_out", MAX_BYTES_OUT),
    ("latency_ms", MAX_LATENCY_MS),
    ("status", 200.0),  # an integer-valued float is an integer, normalised to 200
    ("bytes_out", 1.0),
    ("occurred_at_ms", 1.7e12),
]


@pytest.mark.parametrize(("name", "value"), NEAR_MISSES, ids=lambda v: repr(v)[:30])
def test_near_miss_is_rejected_by_both(recorder: UsageRecorder, name: str, value: Any) -> None:
    row = {**GOOD, name: value}
    assert _slow_path(row) is None
    _check(recorder, row)


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=lambda v: repr(v)[:30])
def test_boundary_is_accepted_by_both(recorder: UsageRecorder, name: str, value: Any) -> None:
    row = {**GOOD, name: value}
    assert _slow_path(row) is not None
    _check(recorder, row)
