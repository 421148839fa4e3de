"""`decode_requests`: singles whole, batches row by row, envelopes whole.

Expected values are written out here from the rules (decision 1-5 of issue 11), not read
back from the decoder: which rows survive, their values, and each rejected row's index,
reason, message and single-event form.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.codec import decode_requests
from schemas.errors import InvalidMessage, InvalidReason
from schemas.request_columns import COLUMNS

ENVELOPE: dict[str, Any] = {
    "type": "request.batch",
    "schema_version": 1,
    "event_id": "0194b5a3-1f29-7abc-8def-0123456789a9",
    "occurred_at": "2026-01-15T09:30:00.123Z",
    "batch_id": "0194b5a3-1f2a-7abc-8def-0123456789aa",
}
ROW: dict[str, Any] = {
    "occurred_at_ms": 1_768_469_400_123,
    "key_id": "key_abc123",
    "account_id": "acc_7Hq2x",
    "method": "POST",
    "route": "/v1/render",
    "status": 200,
    "latency_ms": 84.5,
    "client_ip": "203.0.113.7",
    "bytes_out": 48213,
    "is_render": True,
    "watermarked": False,
}


def _event_id(i: int) -> str:
    return f"0194b5a3-1f25-7abc-8def-{i:012x}"


def _batch(rows: list[dict[str, Any]]) -> bytes:
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for i, row in enumerate(rows):
        for name in COLUMNS:
            columns[name].append({"event_id": _event_id(i), **ROW, **row}[name])
    return orjson.dumps({**ENVELOPE, "columns": columns})


def test_a_batch_keeps_its_good_rows_and_rejects_each_bad_one() -> None:
    decoded = decode_requests(
        _batch([{}, {"status": "200"}, {"bytes_out": 7.0}, {"client_ip": "fe80::1%eth0"}, {}])
    )
    assert decoded.count == 3
    assert decoded.columns["event_id"] == [_event_id(0), _event_id(2), _event_id(4)]
    assert decoded.columns["bytes_out"] == [48213, 7, 48213]
    assert [r.index for r in decoded.rejected] == [1, 3]
    assert {r.reason for r in decoded.rejected} == {InvalidReason.SCHEMA_VIOLATION}
    assert decoded.rejected[0].message == (
        "events[1].status: expected an integer in [100, 599], got '200'"
    )
    assert decoded.rejected[1].message.startswith("events[3].client_ip: expected an IPv4")


def test_a_rejected_row_is_a_single_event_of_the_raw_values() -> None:
    decoded = decode_requests(_batch([{}, {"status": "200", "latency_ms": True}]))
    (rejected,) = decoded.rejected
    assert rejected.row == {
        "type": "request.completed",
        "schema_version": 1,
        "event_id": _event_id(1),
        "occurred_at": "2026-01-15T09:30:00.123Z",
        **{k: v for k, v in ROW.items() if k != "occurred_at_ms"},
        "status": "200",
        "latency_ms": True,
    }
    with pytest.raises(InvalidMessage, match=r"^schema_violation: status: ") as err:
        decode_requests(orjson.dumps(rejected.row))  # refused as a single for the same field
    assert err.value.reason is InvalidReason.SCHEMA_VIOLATION


def test_a_row_with_a_bad_time_keeps_it_as_occurred_at_ms() -> None:
    (rejected,) = decode_requests(_batch([{"occurred_at_ms": "soon"}, {}])).rejected
    assert rejected.index == 0
    assert rejected.row["occurred_at_ms"] == "soon"
    assert "occurred_at" not in rejected.row
    assert rejected.message.startswith("events[0].occurred_at_ms: expected an integer in [")


def test_a_batch_of_bad_rows_only_has_no_valid_rows() -> None:
    decoded = decode_requests(_batch([{"status": 600}, {"method": "get"}]))
    assert decoded.count == 0
    assert decoded.columns == {name: [] for name in COLUMNS}
    assert [r.index for r in decoded.rejected] == [0, 1]


def test_the_first_bad_field_of_a_row_is_named() -> None:
    (rejected,) = decode_requests(_batch([{"route": "", "status": 0, "is_render": 1}])).rejected
    assert rejected.message.startswith("events[0].route: ")


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": "not-a-uuid"},
        {"occurred_at": 1_768_469_400_123},
        {"batch_id": None},
        {"schema_version": "1"},
        {"columns": {"event_id": [_event_id(0)]}},  # columns missing
        {"columns": {name: [] for name in COLUMNS}},  # no rows
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_broken_envelope_rejects_the_whole_record(change: dict[str, Any]) -> None:
    body = {**orjson.loads(_batch([{}])), **change}
    with pytest.raises(InvalidMessage) as err:
        decode_requests(orjson.dumps(body))
    assert err.value.reason is InvalidReason.SCHEMA_VIOLATION


def test_columns_of_different_lengths_reject_the_whole_record() -> None:
    body = orjson.loads(_batch([{}, {}]))
    body["columns"]["status"].append(200)
    with pytest.raises(InvalidMessage, match=r"columns\.status: 3 values, expected 2"):
        decode_requests(orjson.dumps(body))


SINGLE: dict[str, Any] = {
    **{k: v for k, v in ENVELOPE.items() if k != "batch_id"},
    "type": "request.completed",
    **{k: v for k, v in ROW.items() if k != "occurred_at_ms"},
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "200"),
        ("latency_ms", "12.5"),
        ("latency_ms", True),
        ("is_render", "yes"),
        ("is_render", 1),
        ("bytes_out", "10"),
        ("bytes_out", 2**32),
        ("client_ip", 16909060),
        ("client_ip", "fe80::1%eth0"),
        ("occurred_at", 1_768_469_400_123),
        ("occurred_at", "2099-12-31T23:59:59Z "),
        ("event_id", None),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_a_bad_single_is_rejected_naming_its_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidMessage, match=rf"^schema_violation: {field}: expected "):
        decode_requests(orjson.dumps({**SINGLE, field: value}))


def test_a_single_is_decoded_as_its_raw_values_with_integers_normalised() -> None:
    decoded = decode_requests(
        orjson.dumps({**SINGLE, "status": 404.0, "client_ip": "2001:DB8::1", "bytes_out": 1e3})
    )
    assert decoded.count == 1
    assert decoded.rejected == ()
    assert decoded.columns["occurred_at_ms"] == [1_768_469_400_123]
    assert decoded.columns["status"] == [404] and type(decoded.columns["status"][0]) is int
    assert decoded.columns["bytes_out"] == [1000]
    assert decoded.columns["client_ip"] == ["2001:DB8::1"]  # as written, like a batch's


def test_a_single_may_leave_out_the_fields_with_defaults() -> None:
    single = {k: v for k, v in SINGLE.items() if k not in ("bytes_out", "is_render", "watermarked")}
    columns = decode_requests(orjson.dumps(single)).columns
    assert (columns["bytes_out"], columns["is_render"], columns["watermarked"]) == (
        [0],
        [False],
        [False],
    )


def test_a_single_reads_its_time_in_any_offset() -> None:
    single = {**SINGLE, "occurred_at": "2026-01-15T10:30:00.123999+01:00"}
    assert decode_requests(orjson.dumps(single)).columns["occurred_at_ms"] == [1_768_469_400_123]
