"""Decoding never fails with anything but `InvalidMessage`, whatever the bytes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import DecodedRequests, decode_key_event, decode_requests
from schemas.errors import InvalidMessage
from schemas.request_columns import COLUMNS

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"
EXAMPLE_OBJECTS = [orjson.loads(p.read_bytes()) for p in sorted(EXAMPLES.glob("*.json"))]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _decode_both(data: bytes) -> None:
    try:
        result = decode_requests(data)
    except InvalidMessage:
        pass
    else:
        assert isinstance(result, DecodedRequests)
        assert set(result.columns) == set(COLUMNS)
        assert all(len(v) == result.count for v in result.columns.values())
    with contextlib.suppress(InvalidMessage):
        decode_key_event(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_both(data)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _decode_both(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


@st.composite
def mutated_examples(draw: st.DrawFn) -> bytes:
    """A canonical example with one field (or one column cell) replaced or removed."""
    obj: dict[str, Any] = orjson.loads(orjson.dumps(draw(st.sampled_from(EXAMPLE_OBJECTS))))
    target: dict[str, Any] = obj
    if "columns" in obj and draw(st.booleans()):
        target = obj["columns"]
    name = draw(st.sampled_from(sorted(target)))
    action = draw(st.sampled_from(["replace", "delete", "cell"]))
    if action == "delete":
        del target[name]
    elif action == "cell" and isinstance(target[name], list) and target[name]:
        target[name][draw(st.integers(0, len(target[name]) - 1))] = draw(json_values)
    else:
        target[name] = draw(json_values)
    return orjson.dumps(obj)


@settings(max_examples=500)
@given(mutated_examples())
def test_mutated_examples(data: bytes) -> None:
    _decode_both(data)


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=64))
def test_truncated_or_garbled_examples(noise: bytes) -> None:
    for obj in EXAMPLE_OBJECTS:
        raw = orjson.dumps(obj)
        _decode_both(raw[: len(noise) * 7 % len(raw)] + noise)
