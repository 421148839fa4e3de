"""The fast columnar validator and the pydantic `RequestColumns` model agree.

`validate_columns` is what the ingest path runs; `RequestColumns` is the documented
contract. Generated near-valid bodies (valid rows with boundary and wrong values mixed
in, ragged or missing columns) must be accepted by both or rejected by both. The model's
field rules (`schemas.wire_types`) do not coerce in any mode; it is checked in strict
JSON mode here, and in every mode by `test_schemas_agree`.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.errors import InvalidMessage
from schemas.request_columns import COLUMNS, check_columns, validate_columns
from schemas.requests import RequestColumns

GOOD: dict[str, list[Any]] = {
    "event_id": ["0194b5a3-1f25-7abc-8def-0123456789a5", "00000000-0000-0000-0000-000000000000"],
    "occurred_at_ms": [946_684_800_000, 1_768_469_400_123, 4_102_444_800_000, 1.7e12],
    "key_id": ["key_abc123", "key_" + "Z" * 64],
    "account_id": ["acc_7Hq", "acc_" + "9" * 64],
    "method": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    "route": ["/", "/v1/render", "r" * 512, "\u00e9" * 512],
    "status": [100, 200, 404, 599, 200.0],  # an integer-valued float is an integer
    "latency_ms": [0, 0.0, 12.5, 3_600_000, 3_600_000.0],
    "client_ip": ["203.0.113.7", "0.0.0.0", "2001:db8::1", "::", "::ffff:1.2.3.4", "FE80::1"],
    "bytes_out": [0, 1, 2**32 - 1, 1.0],
    "is_render": [True, False],
    "watermarked": [True, False],
}
# Values the two validators once judged differently; the tests at the end pin them.
BAD: dict[str, list[Any]] = {
    "event_id": [
        "not-a-uuid",
        "",
        "0194b5a3-1f25-7abc-8def-0123456789a5\n",
        "0194b5a3-1f25-7abc-8def-0123456789a-",  # a fifth hyphen
        "0194b5a3x1f25-7abc-8def-0123456789a5",  # a hyphen missing
        "0194b5a3-1f25-7abc-8def-0123456789ag",  # not hex
        "0194b5a3-1f25-7abc-8def-0123456789a\u00e9",  # not ASCII
        ["0194b5a3-1f25-7abc-8def-0123456789a5"],
        5,
        None,
    ],
    "occurred_at_ms": [946_684_799_999, 4_102_444_800_001, -1, 1.5e12 + 0.5, "1768469400123", True],
    "key_id": ["key_abc12", "key_abc-123", "abc123456", "key_" + "Z" * 65, "", 7],
    "account_id": ["acc_ab", "acc_a b c", "ACC_abc", 3, None],
    "method": ["get", "TRACE", "", None],
    "route": ["", "r" * 513, 1, None],
    "status": [99, 600, 200.5, "200", None, True],
    "latency_ms": [-0.001, 3_600_000.5, 1e400, "12", None, False],
    "client_ip": [
        "256.1.1.1",
        "1.2.3",
        "01.2.3.4",
        " 1.2.3.4",
        "1.2.3.4/32",
        "",
        1234,
        "::g",
        "1.2.3.4\u0000",
        ["1.2.3.4"],
        "fe80::1%eth0",  # a zone id
    ],
    "bytes_out": [-1, 1.5, "10", None, False, 2**32, 2**63 - 1],
    "is_render": [0, 1, "true", None],
    "watermarked": [0, "false", None],
}


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> Any:
    n = draw(st.integers(1, 4))
    body: dict[str, Any] = {
        name: [draw(st.sampled_from(GOOD[name])) for _ in range(n)] for name in COLUMNS
    }
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(COLUMNS))
        kind = draw(st.sampled_from(["cell", "cell", "cell", "ragged", "missing", "not_list"]))
        column = body.get(name)
        if not isinstance(column, list):
            continue  # already removed or replaced
        if kind == "cell":
            column[draw(st.integers(0, n - 1))] = draw(st.sampled_from(BAD[name]))
        elif kind == "ragged":
            column.append(draw(st.sampled_from(GOOD[name])))
        elif kind == "missing":
            del body[name]
        else:
            body[name] = draw(st.sampled_from(GOOD[name]))
    if draw(st.integers(0, 9)) == 0:
        body["extra_column"] = [1]
    return orjson.loads(orjson.dumps(body))


def _fast_accepts(body: Any) -> bool:
    try:
        validate_columns(body)
    except InvalidMessage:
        return False
    return True


def _model_accepts(body: Any) -> bool:
    try:
        RequestColumns.model_validate_json(orjson.dumps(body), strict=True)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500)
@given(near_valid_bodies())
def test_fast_validator_agrees_with_the_model(body: Any) -> None:
    assert _fast_accepts(body) == _model_accepts(body), body


def test_generator_reaches_both_outcomes() -> None:
    valid = {name: GOOD[name][:1] for name in COLUMNS}
    assert _fast_accepts(valid) and _model_accepts(valid)
    bad = {**valid, "status": [600]}
    assert not _fast_accepts(bad) and not _model_accepts(bad)


def _single_row_with(name: str, value: Any) -> dict[str, list[Any]]:
    return {**{n: GOOD[n][:1] for n in COLUMNS}, name: [value]}


FORMER_DIVERGENCES = [
    ("event_id", "0194B5A3-1F25-7ABC-8DEF-0123456789A5"),  # uppercase UUID
    ("event_id", "0194b5a31f257abc8def0123456789a5"),  # UUID without hyphens
    ("event_id", "{0194b5a3-1f25-7abc-8def-0123456789a5}"),  # braced UUID
    ("bytes_out", 2**63),  # the model has no upper bound, the fast path stops at Int64
]


@pytest.mark.parametrize(("name", "value"), FORMER_DIVERGENCES)
def test_former_divergence(name: str, value: Any) -> None:
    body = orjson.loads(orjson.dumps(_single_row_with(name, value)))
    assert _fast_accepts(body) == _model_accepts(body)


def test_former_divergence_empty_batch() -> None:
    body: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    assert _fast_accepts(body) == _model_accepts(body)


def test_the_first_bad_row_is_named() -> None:
    """Every column check names the first bad row, wherever its fast pass failed."""
    n = 6
    body = {name: GOOD[name][:1] * n for name in COLUMNS}
    body["event_id"] = [f"0194b5a3-1f25-7abc-8def-{i:012x}" for i in range(n)]
    for name in COLUMNS:
        for bad in BAD[name][:3]:
            column = list(body[name])
            column[2] = column[4] = bad
            with pytest.raises(InvalidMessage, match=rf"^schema_violation: events\[2\]\.{name}: "):
                validate_columns(orjson.loads(orjson.dumps({**body, name: column})))


def test_a_nul_in_an_address_is_a_schema_violation() -> None:
    """Not a `ValueError` from `socket.inet_pton`: the worker dead-letters the record."""
    body = _single_row_with("client_ip", "1.2.3.4\u0000")
    with pytest.raises(InvalidMessage, match=r"client_ip"):
        validate_columns(body)


def test_every_bad_row_is_named_and_the_others_kept() -> None:
    """`check_columns` judges each row: the bad rows by index, the good ones kept in order."""
    n = 6
    body = {name: GOOD[name][:1] * n for name in COLUMNS}
    body["event_id"] = [f"0194b5a3-1f25-7abc-8def-{i:012x}" for i in range(n)]
    body["status"] = [200, 200, "200", 200, 200, 600]
    body["bytes_out"] = [0, 0, -1, 2**32, 7.0, 0]
    checked = check_columns(orjson.loads(orjson.dumps(body)))
    assert checked.count == n
    assert checked.errors == {
        2: "status: expected an integer in [100, 599], got '200'",
        3: "bytes_out: expected an integer in [0, 4294967295], got 4294967296",
        5: "status: expected an integer in [100, 599], got 600",
    }
    valid = checked.valid()
    assert valid["event_id"] == [body["event_id"][i] for i in (0, 1, 4)]
    assert valid["bytes_out"] == [0, 0, 7]
    assert type(valid["bytes_out"][2]) is int  # 7.0 normalised


def test_integer_valued_floats_are_normalised_to_ints() -> None:
    body = {name: GOOD[name][:1] for name in COLUMNS}
    body.update(occurred_at_ms=[1.7e12], status=[404.0], bytes_out=[10.0])
    columns, count = validate_columns(orjson.loads(orjson.dumps(body)))
    assert count == 1
    for name, value in (("occurred_at_ms", 1_700_000_000_000), ("status", 404), ("bytes_out", 10)):
        assert columns[name] == [value]
        assert type(columns[name][0]) is int
