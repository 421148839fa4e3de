"""The exported JSON Schemas, the pydantic models and the decoders accept the same events.

Events are generated from the exported schemas (`schemas.export.json_schema`): every
property's values by hypothesis-jsonschema's `from_schema` on that property's schema,
the object assembled here from the schema's `properties` and `required` (with unknown
extra fields now and then), because hypothesis-jsonschema 0.23.1's own object strategy
no longer runs on this Hypothesis (it calls `many.more()`, which is gone). A near miss is
such an event with one change: a field dropped, replaced by a value of another JSON type
(strings for numbers, booleans for numbers, numbers for text and timestamps), moved
just past or onto a bound, an integer written as a float, an address given a zone id,
an id or a time written almost right, or an unknown field added.

For each object, all of these must give the same verdict:

- JSON Schema: `jsonschema` (draft 2020-12, format assertions on) against the exported
  schema. `pattern` is matched as ECMA-262 means it, `$` only at the very end: Python's
  `re.search`, which `jsonschema` uses, also lets `$` match before a final newline. For a
  batch, the one rule JSON Schema cannot state is added: columns of one length.
- The model: `model_validate_json` in lax and in strict mode and `model_validate` on the
  parsed JSON, all with the `WIRE` context (required fields must be present).
- The decoder: `decode_requests` on the object as a single record, and on the object as
  a batch of one (through the column validator); `decode_key_event` for key events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import (  # type: ignore[import-untyped]
    Draft202012Validator,
    FormatChecker,
    ValidationError,
    validators,
)
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticError

from schemas.base import WIRE
from schemas.codec import decode_key_event, decode_requests
from schemas.errors import InvalidMessage
from schemas.export import export_json_schemas, json_schema
from schemas.keys import (
    KEY_EVENT_ADAPTER,
    AccountCreated,
    KeyAllowListChanged,
    KeyCreated,
    KeyDeleted,
    KeyRenamed,
    KeyRevoked,
    KeyRolled,
    PlanChanged,
)
from schemas.request_columns import COLUMNS
from schemas.requests import OutcomeBatch, OutcomeRecorded, RequestBatch, RequestCompleted
from schemas.uuid7 import uuid7

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "schemas" / "examples"
EVENT_ID = "0194b5a3-1f29-7abc-8def-0123456789a9"
AT = "2026-01-15T09:30:00.123Z"
EXAMPLES = 200
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NEAR_SETTINGS = settings(SETTINGS, max_examples=10)
"""Per field: a few generated events, each with one of that field's near misses."""

# --------------------------------------------------------------------------- JSON Schema


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """`pattern` as ECMA-262 reads it: a final `$` matches only at the end of the text."""
    if validator.is_type(instance, "string"):
        python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(python, instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def _validator(model: type[BaseModel]) -> Any:
    schema = json_schema(model)
    Draft202012Validator.check_schema(schema)
    return EcmaValidator(schema, format_checker=FormatChecker())


REQUEST_SCHEMAS = {m: _validator(m) for m in (RequestCompleted, RequestBatch)}
KEY_MODELS: tuple[type[BaseModel], ...] = (
    AccountCreated,
    PlanChanged,
    KeyCreated,
    KeyRenamed,
    KeyRevoked,
    KeyDeleted,
    KeyAllowListChanged,
    KeyRolled,
)
KEY_SCHEMAS = {m: _validator(m) for m in KEY_MODELS}


def _same_length_columns(obj: Any) -> bool:
    columns = obj.get("columns") if isinstance(obj, dict) else None
    if not isinstance(columns, dict):
        return True  # the schema itself judges a missing or malformed body
    lengths = {len(columns[c]) for c in COLUMNS if isinstance(columns.get(c), list)}
    return len(lengths) <= 1


def _schema_accepts_request(obj: Any) -> bool:
    if REQUEST_SCHEMAS[RequestCompleted].is_valid(obj):
        return True
    return bool(REQUEST_SCHEMAS[RequestBatch].is_valid(obj)) and _same_length_columns(obj)


def _schema_accepts_key_event(obj: Any) -> bool:
    return any(v.is_valid(obj) for v in KEY_SCHEMAS.values())


# --------------------------------------------------------------------------- models


def _pydantic_accepts(validate: Callable[[], object]) -> bool:
    try:
        validate()
    except PydanticError:
        return False
    return True


def _model_verdicts(adapter: TypeAdapter[Any], data: bytes) -> set[bool]:
    """The verdicts of every way to validate with the model (they must be one)."""
    loaded = orjson.loads(data)
    return {
        _pydantic_accepts(lambda: adapter.validate_json(data, context=WIRE)),
        _pydantic_accepts(lambda: adapter.validate_json(data, strict=True, context=WIRE)),
        _pydantic_accepts(lambda: adapter.validate_python(loaded, context=WIRE)),
    }


REQUEST_ADAPTER: TypeAdapter[RequestCompleted | RequestBatch] = TypeAdapter(
    RequestCompleted | RequestBatch
)

# --------------------------------------------------------------------------- decoders


def _decodes(decode: Callable[[bytes], Any], data: bytes) -> bool:
    try:
        result = decode(data)
    except InvalidMessage:
        return False
    return not getattr(result, "rejected", ())


def _occurred_ms(value: Any) -> Any:
    """A single's `occurred_at` as a batch's `occurred_at_ms`, converted independently of
    the code under test; None (a value every validator refuses) when the exported schema
    refuses it, since such a value has no batch form to compare."""
    if not _OCCURRED_AT_SCHEMA.is_valid(value):
        return None
    instant = datetime.fromisoformat(value.upper())
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // _MS


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
_OCCURRED_AT_SCHEMA = EcmaValidator(
    json_schema(RequestCompleted)["properties"]["occurred_at"], format_checker=FormatChecker()
)
_SINGLE_DEFAULTS = {"bytes_out": 0, "is_render": False, "watermarked": False}


def _batch_of_one(obj: dict[str, Any]) -> dict[str, Any]:
    """The single event `obj` as a `request.batch` of one row, its values as they are."""
    batch: dict[str, Any] = {
        "event_id": EVENT_ID,
        "occurred_at": AT,
        "batch_id": EVENT_ID,
        "columns": {},
    }
    kind = obj.get("type")
    if kind == "request.completed":
        batch["type"] = "request.batch"
    elif "type" in obj:
        batch["type"] = kind
    if "schema_version" in obj:
        batch["schema_version"] = obj["schema_version"]
    columns = batch["columns"]
    for name, value in obj.items():
        if name == "occurred_at":
            columns["occurred_at_ms"] = [_occurred_ms(value)]
        elif name not in ("type", "schema_version"):
            columns[name] = [value]
    for name, default in _SINGLE_DEFAULTS.items():
        columns.setdefault(name, [default])
    return batch


# --------------------------------------------------------------------------- generation


def _inline(schema: Any, root: dict[str, Any]) -> Any:
    """`schema` with local `$ref`s replaced by their targets and titles dropped."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            target = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
            return _inline({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, root)
        return {k: _inline(v, root) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_inline(v, root) for v in schema]
    return schema


def _for_generation(schema: Any) -> Any:
    """Where a string has both, generate from its `pattern`, not its `format` (the
    pattern is the stricter; hypothesis-jsonschema would filter the format by it)."""
    if isinstance(schema, dict):
        out = {k: _for_generation(v) for k, v in schema.items()}
        if "pattern" in out:
            out.pop("format", None)
        return out
    if isinstance(schema, list):
        return [_for_generation(v) for v in schema]
    return schema


_ANY_JSON = from_schema({})
_PROPERTIES: dict[type[BaseModel], tuple[dict[str, Any], frozenset[str]]] = {}
_STRATEGIES: dict[tuple[type[BaseModel], str], st.SearchStrategy[Any]] = {}


def _properties(model: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    """The exported schema's properties (refs inlined) and required names, once per model."""
    if model not in _PROPERTIES:
        root = json_schema(model)
        properties = {name: _inline(p, root) for name, p in root["properties"].items()}
        _PROPERTIES[model] = properties, frozenset(root["required"])
        for name, prop in properties.items():
            _STRATEGIES[model, name] = from_schema(_for_generation(prop))
    return _PROPERTIES[model]


@st.composite
def _objects(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    """A valid object of `model`'s exported schema (optional fields sometimes left out,
    unknown fields sometimes added)."""
    properties, required = _properties(model)
    obj: dict[str, Any] = {}
    for name in properties:
        if name in required or draw(st.booleans()):
            obj[name] = draw(_STRATEGIES[model, name])
    if draw(st.integers(0, 4)) == 0:
        extra = draw(st.text(max_size=8).filter(lambda n: n not in properties))
        obj[extra] = draw(_ANY_JSON)
    return obj


WRONG_TYPES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.5,
    200.0,
    "200",
    "12.5",
    "true",
    "yes",
    "",
    [1],
    {"a": 1},
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    1.7e12,
    1e300,
]
TIMES: list[Any] = [
    "2100-01-01T00:00:00Z",
    "2100-01-01T00:00:00.000000000+00:00",
    "2000-01-01T00:00:00Z",
    "2000-01-01T00:00:00-00:00",
    "2026-01-15t09:30:00.123z",
    "2026-01-15T09:30:00.123456789+05:30",
    "2024-02-29T00:00:00Z",
    "2099-12-31T23:59:59.999Z",
    "2099-12-31T23:59:59.999+01:00",
    "2100-01-01T00:00:00.001Z",
    "2100-01-01T01:00:00+02:00",  # in range as an instant; refused on an edge day
    "2000-01-01T00:30:00+01:00",  # before the range
    "2000-01-01T12:00:00+01:00",  # in range as an instant; refused on an edge day
    "1999-12-31T23:59:59.999Z",
    "2026-01-15T09:30:00",
    "2026-01-15 09:30:00Z",
    "2026-01-15T09:30:60Z",
    "2025-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-01-15T09:30:00.1234567890Z",
    "2026-01-15T24:00:00Z",
    "2026-01-15T09:30:00+24:00",
    "2026-01-15T09:30:00.Z",
    "2026-01-15",
    "2026-1-15T09:30:00Z",
    "\uff12026-01-15T09:30:00Z",
    "2026-01-15T09:30:00Z\n",
    1_768_469_400_123,
    "1768469400123",
]
IDS: list[Any] = [
    "0194B5A3-1F29-7ABC-8DEF-0123456789A9",
    "0194b5a31f297abc8def0123456789a9",
    "{0194b5a3-1f29-7abc-8def-0123456789a9}",
    "urn:uuid:0194b5a3-1f29-7abc-8def-0123456789a9",
    "0194b5a3-1f29-7abc-8def-0123456789a9\n",
    "00000000-0000-0000-0000-000000000000",
]
ADDRESSES: list[Any] = [
    "fe80::1%eth0",
    "fe80::1%1",
    "1.2.3.04",
    " 1.2.3.4",
    "1.2.3.4/32",
    "::ffff:1.2.3.4",
    "2001:DB8::1",
    "256.1.1.1",
    16909060,
]


def _near(name: str, prop: dict[str, Any], value: Any) -> list[Any]:
    """Values just off (or just on) the rule of property `prop`, whose value was `value`."""
    if name == "occurred_at":
        return TIMES
    if name in ("event_id", "batch_id"):
        return IDS
    if name == "client_ip":
        return [*ADDRESSES, f"{value}%eth0"]
    if "minimum" in prop:
        lo, hi = prop["minimum"], prop["maximum"]
        around = [lo - 1, lo, hi, hi + 1, hi + 0.5, float(hi), lo - 0.5, str(lo), str(hi)]
        if isinstance(value, int | float) and not isinstance(value, bool):
            around += [float(value), str(value)]
        return around
    if isinstance(value, str) and value:
        return [value + "\n", value.upper(), value.lower(), value[:-1], " " + value, value + "x"]
    return []


def mutations(model: type[BaseModel], obj: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every one-change variant of `obj` at field `name`: dropped, given a value of another
    type, given a value near its rule; and `obj` with an unknown field added."""
    properties, _ = _properties(model)
    near = _near(name, properties[name], obj.get(name))
    variants = [{k: v for k, v in obj.items() if k != name}]
    variants += [{**obj, name: value} for value in [*WRONG_TYPES, *near]]
    variants.append({**obj, f"{name}_added_later": {"any": [1, "json"]}})
    return variants


def _fields(model: type[BaseModel]) -> list[str]:
    return sorted(_properties(model)[0])


@st.composite
def _near_misses(draw: st.DrawFn, model: type[BaseModel], name: str) -> dict[str, Any]:
    """A valid object of `model` with one change at field `name`."""
    return draw(st.sampled_from(mutations(model, draw(_objects(model)), name)))


def _wire(obj: Any) -> bytes:
    """`obj` as a record value; objects JSON cannot carry never reach a decoder."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        assume(False)
        raise


# --------------------------------------------------------------------------- verdicts


def request_verdicts(obj: dict[str, Any]) -> dict[str, Any]:
    data = _wire(obj)
    loaded = orjson.loads(data)
    batch = _wire(_batch_of_one(loaded))
    return {
        "schema": _schema_accepts_request(loaded),
        "model": _model_verdicts(REQUEST_ADAPTER, data),
        "decoder (single)": _decodes(decode_requests, data),
        "schema (batch of one)": _schema_accepts_request(orjson.loads(batch)),
        "model (batch of one)": _model_verdicts(REQUEST_ADAPTER, batch),
        "decoder (batch of one)": _decodes(decode_requests, batch),
    }


def key_event_verdicts(obj: dict[str, Any]) -> dict[str, Any]:
    data = _wire(obj)
    return {
        "schema": _schema_accepts_key_event(orjson.loads(data)),
        "model": _model_verdicts(KEY_EVENT_ADAPTER, data),
        "decoder": _decodes(decode_key_event, data),
    }


def _agreed(verdicts: dict[str, Any]) -> bool:
    """The one verdict all agree on (a model's set of verdicts must hold just that one)."""
    flat = {v if isinstance(v, bool) else frozenset(v) for v in verdicts.values()}
    assert flat in ({True, frozenset({True})}, {False, frozenset({False})}), verdicts
    return True in flat


@SETTINGS
@given(_objects(RequestCompleted))
def test_generated_request_events_are_accepted_by_all(obj: dict[str, Any]) -> None:
    assert _agreed(request_verdicts(obj)), obj


@NEAR_SETTINGS
@pytest.mark.parametrize("name", _fields(RequestCompleted))
@given(data=st.data())
def test_request_near_misses_get_one_verdict(name: str, data: st.DataObject) -> None:
    _agreed(request_verdicts(data.draw(_near_misses(RequestCompleted, name))))


@SETTINGS
@given(st.sampled_from(KEY_MODELS).flatmap(_objects))
def test_generated_key_events_are_accepted_by_all(obj: dict[str, Any]) -> None:
    assert _agreed(key_event_verdicts(obj)), obj


KEY_FIELDS = [(model, name) for model in KEY_MODELS for name in _fields(model)]


@NEAR_SETTINGS
@pytest.mark.parametrize(("model", "name"), KEY_FIELDS, ids=lambda v: getattr(v, "__name__", v))
@given(data=st.data())
def test_key_event_near_misses_get_one_verdict(
    model: type[BaseModel], name: str, data: st.DataObject
) -> None:
    _agreed(key_event_verdicts(data.draw(_near_misses(model, name))))


# --------------------------------------------------------------------------- pinned cases

SINGLE: dict[str, Any] = {
    **orjson.loads((EXAMPLES_DIR / "request.completed.json").read_bytes()),
    "event_id": EVENT_ID,
    "occurred_at": AT,
}
REFUSED = [  # the list, and more: each is refused by every enforcer, in every envelope
    ("status", "200"),
    ("status", 200.5),
    ("status", True),
    ("latency_ms", "12.5"),
    ("latency_ms", True),
    ("is_render", "yes"),
    ("is_render", 1),
    ("bytes_out", "10"),
    ("bytes_out", 2**32),
    ("bytes_out", 2**63 - 1),
    ("client_ip", 16909060),
    ("client_ip", "fe80::1%eth0"),
    ("occurred_at", 1_768_469_400_123),
    ("occurred_at", "2026-01-15T09:30:00"),
    ("occurred_at", "2100-01-01T00:00:00.001Z"),
    ("event_id", "0194B5A3-1F29-7ABC-8DEF-0123456789A9"),
    ("key_id", "key_abc123\n"),
    ("type", None),
]
ACCEPTED = [
    ("status", 200.0),  # a JSON Schema integer
    ("bytes_out", 2**32 - 1),
    ("bytes_out", 1.0),
    ("latency_ms", 3),
    ("client_ip", "2001:DB8::1"),
    ("occurred_at", "2100-01-01T00:00:00Z"),
    ("occurred_at", "2026-01-15T10:30:00.123456789+01:00"),
    ("unknown_field", {"added": "later"}),
]
REQUIRED = ["type", "schema_version", "event_id", "occurred_at", "key_id", "account_id"]
OPTIONAL = ["bytes_out", "is_render", "watermarked"]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=lambda v: repr(v)[:40])
def test_refused_by_every_enforcer(name: str, value: Any) -> None:
    assert not _agreed(request_verdicts({**SINGLE, name: value}))


@pytest.mark.parametrize(("name", "value"), ACCEPTED, ids=lambda v: repr(v)[:40])
def test_accepted_by_every_enforcer(name: str, value: Any) -> None:
    assert _agreed(request_verdicts({**SINGLE, name: value}))


@pytest.mark.parametrize("name", REQUIRED)
def test_a_required_field_missing_is_refused_by_every_enforcer(name: str) -> None:
    assert not _agreed(request_verdicts({k: v for k, v in SINGLE.items() if k != name}))


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_optional_field_missing_is_accepted_by_every_enforcer(name: str) -> None:
    assert _agreed(request_verdicts({k: v for k, v in SINGLE.items() if k != name}))


def test_exported_schemas_require_the_envelope_fields() -> None:
    models: list[type[BaseModel]] = [
        RequestCompleted,
        RequestBatch,
        OutcomeRecorded,
        OutcomeBatch,
        *KEY_MODELS,
    ]
    for model in models:
        schema = json_schema(model)
        assert {"type", "schema_version", "event_id", "occurred_at"} <= set(schema["required"])
        for name in ("type", "schema_version"):
            assert "default" not in schema["properties"][name], (model, name)
    assert "batch_id" in json_schema(RequestBatch)["required"]
    assert json_schema(RequestCompleted)["properties"]["bytes_out"]["maximum"] == 2**32 - 1


def test_python_producers_may_leave_the_envelope_to_the_model() -> None:
    """Constructors fill `event_id`, `occurred_at` and `schema_version`; what they encode
    is accepted by every enforcer."""
    fields = {k: v for k, v in SINGLE.items() if k not in REQUIRED[:4]}
    event = RequestCompleted(**fields)
    assert _agreed(request_verdicts(event.model_dump(mode="json")))
    key = KeyDeleted(key_id="key_abc123", account_id="acc_7Hq2x", seq=2, prev=uuid7())
    assert _agreed(key_event_verdicts(key.model_dump(mode="json")))


KEY_EXAMPLES = {
    model: orjson.loads((EXAMPLES_DIR / f"{model.model_fields['type'].default}.json").read_bytes())
    for model in KEY_MODELS
}


def test_every_listed_near_miss_gets_one_verdict() -> None:
    """Every mutation of every field of a fixed valid event, each tried once; both
    verdicts occur, so the near misses are not all of one kind."""
    seen: list[bool] = []
    for name in _fields(RequestCompleted):
        seen += [_agreed(request_verdicts(m)) for m in mutations(RequestCompleted, SINGLE, name)]
    for model, example in KEY_EXAMPLES.items():
        for name in _fields(model):
            seen += [_agreed(key_event_verdicts(m)) for m in mutations(model, example, name)]
    assert len(seen) > 500
    assert {True, False} <= set(seen)


def test_the_examples_validate_against_the_written_schemas(tmp_path: Path) -> None:
    """`export_json_schemas` writes `json_schema(model)`; every example of a request or key
    event passes its written schema."""
    written = {p.name: orjson.loads(p.read_bytes()) for p in export_json_schemas(tmp_path)}
    models: list[type[BaseModel]] = [
        RequestCompleted,
        RequestBatch,
        OutcomeRecorded,
        OutcomeBatch,
        *KEY_MODELS,
    ]
    for model in models:
        schema = written[f"{model.__name__}.schema.json"]
        assert schema == json_schema(model)
        example = EXAMPLES_DIR / f"{model.model_fields['type'].default}.json"
        EcmaValidator(schema, format_checker=FormatChecker()).validate(
            orjson.loads(example.read_bytes())
        )
