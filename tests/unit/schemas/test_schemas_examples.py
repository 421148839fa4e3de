"""Canonical example messages: one per event type, each round-trips through the codec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from schemas.codec import (
    SUPPORTED_VERSIONS,
    decode_key_event,
    decode_request_batch,
    decode_requests,
    decode_rule_event,
    encode,
)
from schemas.errors import InvalidMessage, InvalidReason

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"
KEY_EXAMPLES = sorted([*EXAMPLES.glob("key.*.json"), *EXAMPLES.glob("account.*.json")])
REQUEST_EXAMPLES = sorted(EXAMPLES.glob("request.*.json"))
RULE_EXAMPLES = sorted(EXAMPLES.glob("alert_rule_*.json"))


def _raw(path: Path) -> bytes:
    return path.read_bytes()


def _decoder(path: Path) -> Callable[[bytes], object]:
    """The codec entry point for an example's topic, by its event type."""
    if path.stem.startswith(("key.", "account.")):
        return decode_key_event
    if path.stem.startswith("alert_rule_"):
        return decode_rule_event
    return lambda data: decode_requests(data).count


def test_every_event_type_has_an_example() -> None:
    names = {p.stem for p in EXAMPLES.glob("*.json")}
    assert names == set(SUPPORTED_VERSIONS)


@pytest.mark.parametrize("path", KEY_EXAMPLES, ids=lambda p: p.stem)
def test_key_event_example_round_trips(path: Path) -> None:
    event = decode_key_event(_raw(path))
    assert event.type == path.stem
    assert orjson.loads(encode(event)) == orjson.loads(_raw(path))
    assert decode_key_event(encode(event)) == event


@pytest.mark.parametrize("path", RULE_EXAMPLES, ids=lambda p: p.stem)
def test_rule_event_example_round_trips(path: Path) -> None:
    event = decode_rule_event(_raw(path))
    assert event.type == path.stem
    assert orjson.loads(encode(event)) == orjson.loads(_raw(path))


@pytest.mark.parametrize("path", REQUEST_EXAMPLES, ids=lambda p: p.stem)
def test_request_example_round_trips(path: Path) -> None:
    decoded = decode_requests(_raw(path))
    again = decode_requests(orjson.dumps(orjson.loads(_raw(path))))
    assert decoded == again
    assert decoded.count == len(decoded.columns["event_id"]) >= 1


def test_batch_example_matches_its_full_model() -> None:
    raw = _raw(EXAMPLES / "request.batch.json")
    batch = decode_request_batch(raw)
    assert orjson.loads(encode(batch)) == orjson.loads(raw)
    fast = decode_requests(raw)
    assert fast.count == len(batch.events())
    assert fast.columns["event_id"] == [str(e) for e in batch.columns.event_id]


def test_single_event_example_decodes_to_one_column_row() -> None:
    raw = orjson.loads(_raw(EXAMPLES / "request.completed.json"))
    decoded = decode_requests(_raw(EXAMPLES / "request.completed.json"))
    assert decoded.count == 1
    assert decoded.columns["event_id"] == [raw["event_id"]]
    assert decoded.columns["client_ip"] == [raw["client_ip"]]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_unknown_extra_fields_are_accepted(path: Path) -> None:
    obj = orjson.loads(_raw(path))
    obj["added_in_a_later_minor_version"] = {"anything": [1, 2, 3]}
    if "columns" in obj:
        obj["columns"]["new_column"] = [0] * len(obj["columns"]["event_id"])
    decode = _decoder(path)
    assert decode(orjson.dumps(obj)) == decode(_raw(path))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_newer_schema_version_is_unsupported(path: Path) -> None:
    obj = orjson.loads(_raw(path))
    obj["schema_version"] = SUPPORTED_VERSIONS[obj["type"]] + 1
    decode = _decoder(path)
    with pytest.raises(InvalidMessage) as err:
        decode(orjson.dumps(obj))
    assert err.value.reason is InvalidReason.UNSUPPORTED_VERSION


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
@pytest.mark.parametrize("field", ["type", "schema_version", "event_id", "occurred_at"])
def test_missing_envelope_field_is_a_schema_violation(path: Path, field: str) -> None:
    """Required on the wire: a record without one is dead-lettered, never filled in."""
    obj = orjson.loads(_raw(path))
    del obj[field]
    decode = _decoder(path)
    with pytest.raises(InvalidMessage) as err:
        decode(orjson.dumps(obj))
    assert err.value.reason is InvalidReason.SCHEMA_VIOLATION
    assert field in err.value.message


def test_key_example_on_the_request_decoder_is_unknown_type() -> None:
    with pytest.raises(InvalidMessage) as err:
        decode_requests(_raw(EXAMPLES / "key.created.json"))
    assert err.value.reason is InvalidReason.UNKNOWN_TYPE
