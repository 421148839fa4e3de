"""`presented_digest` on the wire: a verification batch or single outcome round-trips
with and without it (records written before it existed still decode, as all-null); only
`malformed` and `unknown` rows may carry one, and only a well-formed one."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from schemas.codec import decode_outcome_batch, decode_requests, encode
from schemas.errors import InvalidMessage
from schemas.requests import OutcomeBatch, OutcomeRecorded, VerificationOutcome, presented_digest

AT = datetime(2026, 12, 1, 12, 3, 10, 250_000, tzinfo=UTC)
DIGEST = hashlib.sha256(b"pk_live_notarealkey").hexdigest()[:16]


def _events(digest: str | None) -> list[OutcomeRecorded]:
    return [
        OutcomeRecorded(
            occurred_at=AT,
            outcome=VerificationOutcome.VALID,
            key_id="key_wire0001",
            account_id="acc_wire",
            client_ip="203.0.113.9",  # type: ignore[arg-type]
            count=42,
        ),
        OutcomeRecorded(
            occurred_at=AT,
            outcome=VerificationOutcome.UNKNOWN,
            client_ip="203.0.113.9",  # type: ignore[arg-type]
            presented_digest=digest,
        ),
        OutcomeRecorded(occurred_at=AT, outcome=VerificationOutcome.MALFORMED),
    ]


def test_the_digest_is_the_first_16_hex_digits_of_the_strings_sha256() -> None:
    assert presented_digest("pk_live_notarealkey") == DIGEST
    assert presented_digest("") == "e3b0c44298fc1c14"  # SHA-256 of nothing
    assert presented_digest("x") != presented_digest("y")


@pytest.mark.parametrize("digest", [DIGEST, None])
def test_a_batch_round_trips_with_and_without_the_digest(digest: str | None) -> None:
    batch = OutcomeBatch.from_events(_events(digest))
    data = encode(batch)
    assert decode_outcome_batch(data) == batch
    assert [e.presented_digest for e in decode_outcome_batch(data).events()] == [
        None,
        digest,
        None,
    ]
    decoded = decode_requests(data)
    assert not decoded.rejected and decoded.outcome_count == 3
    assert decoded.outcomes["presented_digest"] == [None, digest, None]


def test_a_batch_written_before_the_digest_still_decodes() -> None:
    value = orjson.loads(encode(OutcomeBatch.from_events(_events(None))))
    del value["columns"]["presented_digest"]
    old = orjson.dumps(value)
    decoded = decode_requests(old)
    assert not decoded.rejected and decoded.outcome_count == 3
    assert decoded.outcomes["presented_digest"] == [None, None, None]
    batch = decode_outcome_batch(old)
    assert batch.columns.presented_digest is None
    assert [e.presented_digest for e in batch.events()] == [None, None, None]


@pytest.mark.parametrize("digest", [DIGEST, None])
def test_a_single_outcome_round_trips_with_and_without_the_digest(digest: str | None) -> None:
    event = _events(digest)[1]
    value = orjson.loads(encode(event))
    if digest is None:
        del value["presented_digest"]  # as an event of an older producer
    decoded = decode_requests(orjson.dumps(value))
    assert decoded.single and decoded.outcomes["presented_digest"] == [digest]
    assert OutcomeRecorded.model_validate(value) == event


@pytest.mark.parametrize(
    ("row", "digest", "message"),
    [
        (0, DIGEST, "events[0].presented_digest: only a malformed or unknown outcome"),
        (1, DIGEST.upper(), "events[1].presented_digest:"),
        (1, DIGEST[:15], "events[1].presented_digest:"),
        (2, 12345, "events[2].presented_digest:"),
    ],
)
def test_a_digest_on_a_keyed_row_or_a_bad_digest_rejects_the_row(
    row: int, digest: object, message: str
) -> None:
    value = orjson.loads(encode(OutcomeBatch.from_events(_events(None))))
    value["columns"]["presented_digest"][row] = digest
    decoded = decode_requests(orjson.dumps(value))
    assert decoded.outcome_count == 2
    (bad,) = decoded.rejected
    assert bad.index == row and bad.message.startswith(message)
    assert bad.row["presented_digest"] == digest


def test_a_single_revoked_outcome_with_a_digest_is_refused() -> None:
    value = orjson.loads(encode(_events(None)[0]))
    value |= {"outcome": "revoked", "count": 1, "presented_digest": DIGEST}
    with pytest.raises(InvalidMessage, match="presented_digest"):
        decode_requests(orjson.dumps(value))
