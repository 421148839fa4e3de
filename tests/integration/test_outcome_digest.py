"""The presented string's digest through the real path: `KeyVerifier` -> `OutcomeRecorder`
-> Kafka. A `malformed` or `unknown` verdict carries the digest of the string (16 hex
digits of its SHA-256, computed here on its own), every other verdict none, and no
presented string (nor any well-formed secret) is anywhere in the records' bytes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from schemas.codec import decode_requests
from schemas.key_format import generate_secret, hash_secret, hint
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType
from schemas.topics import TopicNames
from streams.client.outcome_recorder import OutcomeRecorder
from streams.client.recorder_config import RecorderConfig
from streams.client.verifier import KeyVerifier
from tests.secret_scan import find_secrets, topic_bytes

pytestmark = pytest.mark.kafka

ACCOUNT = "acc_digests"
NOW = datetime.now(UTC).replace(microsecond=0)


def _record(secret: str, key_id: str, status: KeyStatus) -> KeyRecord:
    return KeyRecord(
        account_id=ACCOUNT,
        key_id=key_id,
        name=key_id,
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=status,
        secret_hash=hash_secret(secret),
        hint=hint(secret),
        created_at=NOW - timedelta(days=1),
        created_by="test",
        updated_at=NOW - timedelta(days=1),
        seq=2,
    )


class _State:
    """The follower's read API over fixed records (the verdicts are not under test)."""

    ready = True

    def __init__(self, records: list[KeyRecord]) -> None:
        self._by_hash = {r.secret_hash: r for r in records}

    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        return self._by_hash.get(secret_hash)


def test_only_keyless_verdicts_carry_a_digest_and_no_string_is_sent(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    live, revoked = generate_secret("live"), generate_secret("live")
    state = _State(
        [
            _record(live, "key_digest0001", KeyStatus.ACTIVE),
            _record(revoked, "key_digest0002", KeyStatus.REVOKED),
        ]
    )
    unknown = [generate_secret("live") for _ in range(3)]
    malformed = ["pk_live_tooshort", "not a key at all"]
    recorder = OutcomeRecorder(RecorderConfig(kafka_bootstrap, topics.requests, linger_ms=5))
    verifier = KeyVerifier(state, outcomes=recorder)  # type: ignore[arg-type]
    presented = {live: "valid", revoked: "revoked"} | dict.fromkeys(unknown, "unknown")
    presented |= dict.fromkeys(malformed, "malformed")
    try:
        for secret, verdict in presented.items():
            got = verifier.verify(secret, client_ip="203.0.113.9", now=NOW)
            assert got.verdict.value == verdict
        assert recorder.flush(20)
    finally:
        recorder.close(10)

    count, data = topic_bytes(kafka_bootstrap, [topics.requests])[topics.requests]
    assert count >= 1
    assert find_secrets(data, known=presented) == set()
    expected = {
        (
            verdict,
            hashlib.sha256(s.encode()).hexdigest()[:16]
            if verdict in ("unknown", "malformed")
            else None,
        )
        for s, verdict in presented.items()
    }
    # every record decodes; the rows are the verdicts with their digests (or none)
    rows: set[tuple[str, str | None]] = set()
    values = [part for part in data.split(b"\n") if part.startswith(b'{"type":"verification.')]
    assert len(values) == count
    for value in values:
        decoded = decode_requests(value)
        assert not decoded.rejected
        out = decoded.outcomes
        rows |= set(zip(out["outcome"], out["presented_digest"], strict=True))
    assert rows == expected
    assert len(expected) == len(presented)  # five distinct digests, two keyed rows
