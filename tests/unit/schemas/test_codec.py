"""`schemas.codec`: every decoder's error reasons, `header_value`, encode/decode round trips.

The reasons are the contract the dead-letter topic and the metrics rely on: each decoder
rejects an oversized message as `too_large`, bytes that are not JSON as `not_json`, JSON
that is not an object or does not fit the model as `schema_violation` (a missing `type`,
`schema_version`, `event_id` or `occurred_at` included: they are required, never filled
in), a `type` string it does not decode as `unknown_type` and a newer `schema_version` as
`unsupported_version`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.alerts import (
    AlertRuleDeleted,
    Comparator,
    Notification,
    NotificationKind,
    RuleKind,
    RuleRef,
    WebhookChannel,
)
from schemas.codec import (
    MAX_MESSAGE_BYTES,
    NOTIFICATION_VERSION,
    SUPPORTED_VERSIONS,
    decode_key_event,
    decode_notification,
    decode_request_batch,
    decode_requests,
    decode_rule_event,
    encode,
    header_value,
)
from schemas.errors import InvalidMessage, InvalidReason
from schemas.keys import KeyEventModel, KeyType, RevokeReason
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import from_epoch_ms
from tests.samples.keys import Chain

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"
AT = from_epoch_ms(1_768_469_400_123)

Decoder = Callable[[bytes], object]


def _example(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads((EXAMPLES / f"{name}.json").read_bytes())
    return obj


def _notification() -> Notification:
    return Notification(
        idempotency_key="fp1.e1.firing",
        fingerprint="fp1",
        rule=RuleRef(rule_id="rule_errors", name="Errors", kind=RuleKind.ERROR_RATE),
        account_id="acc_7Hq2x",
        key_id="key_abc123",
        key_name="production",
        state=NotificationKind.FIRING,
        value=12.5,
        threshold=5.0,
        comparator=Comparator.GT,
        window_s=900,
        started_at=AT,
        episode=1,
        occurred_at=AT,
        channels=[WebhookChannel(url="https://hooks.example.com/x", secret="whsec_" + "A" * 32)],
    )


# One valid object per decoder, with the name of a required field and a bad value for it.
DECODERS: dict[str, tuple[Decoder, dict[str, Any], str, object]] = {
    "requests (single)": (decode_requests, _example("request.completed"), "status", 600),
    "requests (batch)": (decode_requests, _example("request.batch"), "columns", []),
    "request batch": (decode_request_batch, _example("request.batch"), "columns", "x"),
    "key event": (decode_key_event, _example("key.created"), "secret_hash", "md5:00"),
    "rule event": (decode_rule_event, _example("alert_rule_created"), "rule", {}),
    "notification": (
        decode_notification,
        orjson.loads(encode(_notification())),
        "episode",
        0,
    ),
}
TYPED = {name: spec for name, spec in DECODERS.items() if name != "notification"}


def _reason(decode: Decoder, data: bytes) -> InvalidReason:
    with pytest.raises(InvalidMessage) as err:
        decode(data)
    assert err.value.message, "every rejection says why"
    return err.value.reason


@pytest.mark.parametrize("name", DECODERS)
def test_valid_object_decodes(name: str) -> None:
    decode, obj, _, _ = DECODERS[name]
    assert decode(orjson.dumps(obj)) is not None


@pytest.mark.parametrize("name", DECODERS)
def test_too_large(name: str) -> None:
    decode, obj, _, _ = DECODERS[name]
    padded = orjson.dumps({**obj, "pad": "x" * MAX_MESSAGE_BYTES})
    assert _reason(decode, padded) is InvalidReason.TOO_LARGE


@pytest.mark.parametrize(
    "decode", [decode_requests, decode_key_event, decode_rule_event, decode_notification]
)
def test_too_large_honours_max_bytes(decode: Callable[..., object]) -> None:
    with pytest.raises(InvalidMessage) as err:
        decode(b"{" + b" " * 99 + b"}", max_bytes=100)
    assert err.value.reason is InvalidReason.TOO_LARGE
    with pytest.raises(InvalidMessage) as err:
        decode(b"{" + b" " * 98 + b"}", max_bytes=100)
    assert err.value.reason is not InvalidReason.TOO_LARGE


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"\xff\xfe", b'{"a": NaN}', b"{}}"])
def test_not_json(name: str, data: bytes) -> None:
    assert _reason(DECODERS[name][0], data) is InvalidReason.NOT_JSON


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("data", [b"[]", b"[{}]", b'"text"', b"3", b"null", b"true"])
def test_non_object_is_a_schema_violation(name: str, data: bytes) -> None:
    assert _reason(DECODERS[name][0], data) is InvalidReason.SCHEMA_VIOLATION


@pytest.mark.parametrize("name", TYPED)
@pytest.mark.parametrize("kind", ["request.unknown", "key.created ", ""])
def test_unknown_type(name: str, kind: object) -> None:
    decode, obj, _, _ = TYPED[name]
    assert _reason(decode, orjson.dumps({**obj, "type": kind})) is InvalidReason.UNKNOWN_TYPE


@pytest.mark.parametrize("name", TYPED)
@pytest.mark.parametrize("kind", [None, "missing", 5, ["request.completed"]])
def test_missing_or_non_string_type_is_a_schema_violation(name: str, kind: object) -> None:
    """`type` is required (decision 2): a record without it is not filled in or guessed."""
    decode, obj, _, _ = TYPED[name]
    body = {k: v for k, v in obj.items() if k != "type"}
    if kind != "missing":
        body["type"] = kind
    with pytest.raises(InvalidMessage, match=r"^schema_violation: .*type") as err:
        decode(orjson.dumps(body))
    assert err.value.reason is InvalidReason.SCHEMA_VIOLATION


def _envelope_fields(obj: dict[str, Any]) -> list[str]:
    fields = ["schema_version", "event_id", "occurred_at"]
    return [*fields, "batch_id"] if obj["type"] == "request.batch" else fields


ENVELOPE_CASES = [
    (name, field) for name, spec in TYPED.items() for field in _envelope_fields(spec[1])
]


@pytest.mark.parametrize(("name", "field"), ENVELOPE_CASES)
def test_a_missing_envelope_field_is_a_schema_violation(name: str, field: str) -> None:
    """Never filled in from the worker's clock or a random id: a replay must decide the same."""
    decode, obj, _, _ = TYPED[name]
    without = orjson.dumps({k: v for k, v in obj.items() if k != field})
    with pytest.raises(
        InvalidMessage, match=rf"^schema_violation: (\S+: )?missing required field\(s\): {field}"
    ):
        decode(without)


@pytest.mark.parametrize(("name", "field"), ENVELOPE_CASES)
@pytest.mark.parametrize("bad", [None, 5, "", "0194B5A3-1F25-7ABC-8DEF-0123456789A5", 1.7e12])
def test_a_bad_envelope_field_is_a_schema_violation(name: str, field: str, bad: object) -> None:
    decode, obj, _, _ = TYPED[name]
    if field == "schema_version" and bad in (5, 1.7e12):
        return  # a newer version: unsupported_version (below)
    assert _reason(decode, orjson.dumps({**obj, field: bad})) is InvalidReason.SCHEMA_VIOLATION


@pytest.mark.parametrize(
    ("decode", "foreign"),
    [
        (decode_requests, "key.created"),
        (decode_request_batch, "request.completed"),
        (decode_key_event, "alert_rule_created"),
        (decode_rule_event, "request.batch"),
    ],
)
def test_another_topics_example_is_an_unknown_type(decode: Decoder, foreign: str) -> None:
    assert _reason(decode, orjson.dumps(_example(foreign))) is InvalidReason.UNKNOWN_TYPE


def _newest(obj: dict[str, Any]) -> int:
    return SUPPORTED_VERSIONS[obj["type"]] if "type" in obj else NOTIFICATION_VERSION


@pytest.mark.parametrize("name", DECODERS)
def test_unsupported_version(name: str) -> None:
    decode, obj, _, _ = DECODERS[name]
    newer = orjson.dumps({**obj, "schema_version": _newest(obj) + 1})
    assert _reason(decode, newer) is InvalidReason.UNSUPPORTED_VERSION


@pytest.mark.parametrize("name", DECODERS)
def test_current_version_and_its_float_form_decode(name: str) -> None:
    """`1.0` is a JSON Schema integer: accepted wherever an integer is (decision 1)."""
    decode, obj, _, _ = DECODERS[name]
    current = decode(orjson.dumps({**obj, "schema_version": _newest(obj)}))
    as_float = decode(orjson.dumps({**obj, "schema_version": float(_newest(obj))}))
    assert current == as_float


def test_a_notification_without_a_version_is_version_one() -> None:
    obj = orjson.loads(encode(_notification()))
    absent = decode_notification(
        orjson.dumps({k: v for k, v in obj.items() if k != "schema_version"})
    )
    assert absent == decode_notification(orjson.dumps(obj))


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("version", [0, -1, "1", "2", 1.5, True, None, [1]])
def test_malformed_version_is_a_schema_violation(name: str, version: object) -> None:
    decode, obj, _, _ = DECODERS[name]
    body = orjson.dumps({**obj, "schema_version": version})
    assert _reason(decode, body) is InvalidReason.SCHEMA_VIOLATION


@pytest.mark.parametrize("name", DECODERS)
def test_missing_or_bad_field_is_a_schema_violation(name: str) -> None:
    decode, obj, field, bad = DECODERS[name]
    without = orjson.dumps({k: v for k, v in obj.items() if k != field})
    assert _reason(decode, without) is InvalidReason.SCHEMA_VIOLATION
    wrong = orjson.dumps({**obj, field: bad})
    assert _reason(decode, wrong) is InvalidReason.SCHEMA_VIOLATION


def test_schema_violation_names_the_field() -> None:
    obj = {**_example("request.completed"), "status": 600}
    with pytest.raises(InvalidMessage, match=r"^schema_violation: status: "):
        decode_requests(orjson.dumps(obj))


def test_notification_rejects_unknown_fields() -> None:
    body = orjson.dumps({**orjson.loads(encode(_notification())), "surprise": 1})
    assert _reason(decode_notification, body) is InvalidReason.SCHEMA_VIOLATION


# --------------------------------------------------------------------------- round trips


def _key_events() -> list[KeyEventModel]:
    chain = Chain("acc_7Hq2x", Plan.PRO, at=AT)
    chain.change_plan(Plan.BUSINESS)
    chain.create_key("key_abc123", "production", KeyType.LIVE)
    chain.rename("key_abc123", "renamed")
    chain.revoke("key_abc123", RevokeReason.COMPROMISED)
    chain.delete("key_abc123")
    return chain.events


KEY_EVENTS = _key_events()


@pytest.mark.parametrize("event", KEY_EVENTS, ids=lambda e: e.type)
def test_key_event_round_trip(event: KeyEventModel) -> None:
    decoded = decode_key_event(encode(event))
    assert decoded == event
    assert type(decoded) is type(event)


def test_rule_event_round_trip() -> None:
    created = decode_rule_event(orjson.dumps(_example("alert_rule_created")))
    assert decode_rule_event(encode(created)) == created
    deleted = AlertRuleDeleted(rule_id="rule_1", account_id="acc_7Hq2x", occurred_at=AT)
    assert decode_rule_event(encode(deleted)) == deleted


def test_notification_round_trip() -> None:
    notification = _notification()
    decoded = decode_notification(encode(notification))
    assert decoded == notification
    assert decoded.channels == notification.channels


def _request(i: int) -> RequestCompleted:
    return RequestCompleted(
        occurred_at=from_epoch_ms(1_768_469_400_000 + i),
        key_id=f"key_abc{i:03d}",
        account_id="acc_7Hq2x",
        method="POST",
        route=f"/v1/{i}",
        status=200 + i,
        latency_ms=i / 4,
        client_ip="2001:db8::1" if i % 2 else "203.0.113.7",
        bytes_out=i * 1000,
        is_render=i % 2 == 0,
        watermarked=i % 3 == 0,
    )


def test_single_request_round_trip_as_columns() -> None:
    event = _request(7)
    decoded = decode_requests(encode(event))
    assert decoded.count == 1
    assert decoded.columns == {
        "event_id": [str(event.event_id)],
        "occurred_at_ms": [1_768_469_400_007],
        "key_id": ["key_abc007"],
        "account_id": ["acc_7Hq2x"],
        "method": ["POST"],
        "route": ["/v1/7"],
        "status": [207],
        "latency_ms": [1.75],
        "client_ip": ["2001:db8::1"],
        "bytes_out": [7000],
        "is_render": [False],
        "watermarked": [False],
    }


def test_batch_round_trip() -> None:
    events = [_request(i) for i in range(5)]
    batch = RequestBatch.from_events(events)
    data = encode(batch)
    assert decode_request_batch(data) == batch
    assert decode_request_batch(data).events() == events
    fast = decode_requests(data)
    assert fast.count == 5
    assert fast.columns["event_id"] == [str(e.event_id) for e in events]
    assert fast.columns["status"] == [200, 201, 202, 203, 204]
    assert fast.columns["client_ip"][1] == "2001:db8::1"


def test_encode_is_compact_json_of_the_json_dump() -> None:
    event = KEY_EVENTS[0]
    data = encode(event)
    assert b" " not in data.replace(b'"production"', b"")
    assert orjson.loads(data) == event.model_dump(mode="json")
    assert orjson.loads(data)["occurred_at"] == "2026-01-15T09:30:00.123000Z"


# --------------------------------------------------------------------------- header_value


@pytest.mark.parametrize(
    "headers",
    [
        {"keypulse-replay": b"del-1", "other": b"x"},
        [("other", b"x"), ("keypulse-replay", b"del-1")],
        (("keypulse-replay", b"del-1"), ("keypulse-replay", b"del-2")),  # the first wins
        [("keypulse-replay", None), ("keypulse-replay", b"del-1")],  # a None value is skipped
    ],
)
def test_header_value_found(headers: Any) -> None:
    assert header_value(headers, "keypulse-replay") == "del-1"


@pytest.mark.parametrize("headers", [None, {}, [], [("other", b"x")], {"Keypulse-Replay": b"x"}])
def test_header_value_absent(headers: Any) -> None:
    assert header_value(headers, "keypulse-replay") is None


def test_header_value_decodes_text() -> None:
    assert header_value([("h", "caf\u00e9".encode())], "h") == "caf\u00e9"
    assert header_value([("h", b"\xff-x")], "h") == "\ufffd-x"  # undecodable bytes replaced
    assert header_value({"h": "already text"}, "h") == "already text"  # type: ignore[arg-type]


def test_dates_decode_to_aware_utc() -> None:
    event = decode_key_event(encode(KEY_EVENTS[0]))
    assert event.occurred_at == datetime(2026, 1, 15, 9, 30, 0, 123_000, tzinfo=UTC)
    assert event.occurred_at.utcoffset() is not None
