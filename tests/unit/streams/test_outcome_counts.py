"""Verification outcomes before they are sent: valid verdicts counted per key and UTC
minute (`MinuteCounts`, pure, with `now`), the others one row each, bad verdicts refused;
and their records decoded and planned by the worker with the requests of the same take."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

import orjson

from schemas.codec import decode_requests
from schemas.errors import InvalidReason
from schemas.utc import from_epoch_ms, to_epoch_ms
from streams.client.batch_packer import OutcomeRow, pack_outcomes
from streams.client.outcome_recorder import (
    MINUTE_MS,
    MinuteCounts,
    OutcomeAggregator,
    Verdict,
    check_verdict,
)
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest

T0 = 1_768_469_400_000  # 2026-01-15T09:30:00Z, a minute boundary
KEY, ACCOUNT = "key_counts0001", "acc_counts"
LIMITS = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)


def test_valid_verdicts_are_one_row_per_key_and_minute_with_the_newest_time_and_ip() -> None:
    counts = MinuteCounts(flush_after_ms=60_000)
    for i in range(7):
        counts.add(KEY, ACCOUNT, f"192.0.2.{i}", T0 + 1_000 * i, now_ms=T0 + 1_000 * i)
    counts.add(KEY, ACCOUNT, "192.0.2.99", T0 + 500, now_ms=T0 + 7_000)  # late, older
    counts.add("key_counts0002", ACCOUNT, None, T0 + 2_000, now_ms=T0 + 7_000)
    counts.add(KEY, ACCOUNT, "198.51.100.1", T0 + MINUTE_MS + 5, now_ms=T0 + MINUTE_MS + 5)
    assert counts.due(T0 + 30_000) == []  # neither old enough nor its minute over
    first_minute = sorted(counts.due(T0 + MINUTE_MS))
    assert first_minute == [
        (T0 + 2_000, "valid", "key_counts0002", ACCOUNT, None, 1, None),
        (T0 + 6_000, "valid", KEY, ACCOUNT, "192.0.2.6", 8, None),
    ]
    assert len(counts) == 1
    assert counts.due(T0 + MINUTE_MS + 10, force=True) == [
        (T0 + MINUTE_MS + 5, "valid", KEY, ACCOUNT, "198.51.100.1", 1, None)
    ]
    assert len(counts) == 0


def test_a_count_is_sent_flush_after_ms_after_its_first_verdict_then_starts_again() -> None:
    counts = MinuteCounts(flush_after_ms=2_000)
    counts.add(KEY, ACCOUNT, "192.0.2.1", T0 + 10_000, now_ms=T0 + 10_000)
    counts.add(KEY, ACCOUNT, "192.0.2.2", T0 + 11_000, now_ms=T0 + 11_000)
    assert counts.due(T0 + 11_999) == []
    assert counts.due(T0 + 12_000) == [(T0 + 11_000, "valid", KEY, ACCOUNT, "192.0.2.2", 2, None)]
    counts.add(KEY, ACCOUNT, None, T0 + 12_500, now_ms=T0 + 12_500)
    # the last client IP of this new count is unknown: none is made up
    assert counts.due(T0 + 14_500) == [(T0 + 12_500, "valid", KEY, ACCOUNT, None, 1, None)]


def _verdict(outcome: object, key: object, account: object, ip: object, ms: int) -> Verdict:
    return (outcome, key, account, ip, from_epoch_ms(ms), None)


def test_the_aggregator_sends_non_valid_verdicts_one_by_one_and_refuses_bad_ones() -> None:
    queued: deque[Verdict] = deque(
        [
            _verdict("valid", KEY, ACCOUNT, "192.0.2.1", T0),
            _verdict("revoked", KEY, ACCOUNT, "192.0.2.1", T0 + 1),
            _verdict("unknown", None, None, "203.0.113.9", T0 + 2),
            _verdict("malformed", "key_ignored00", "acc_ignored", None, T0 + 3),
            _verdict("valid", KEY, ACCOUNT, "192.0.2.3", T0 + 4),
            _verdict("bogus", KEY, ACCOUNT, None, T0),
            _verdict("expired", None, None, None, T0),  # a keyed outcome without its key
            _verdict("valid", KEY, ACCOUNT, "not-an-ip", T0),
            ("valid", KEY, ACCOUNT, None, datetime(2026, 1, 15), None),  # naive
        ]
    )
    rows: deque[OutcomeRow] = deque()
    aggregator = OutcomeAggregator(MinuteCounts(flush_after_ms=2_000))
    assert aggregator.tick(queued, rows, now_ms=T0 + 10, force=False) == 4
    assert not queued
    assert list(rows) == [
        (T0 + 1, "revoked", KEY, ACCOUNT, "192.0.2.1", 1, None),
        (T0 + 2, "unknown", None, None, "203.0.113.9", 1, None),
        (T0 + 3, "malformed", None, None, None, 1, None),  # no key for a malformed string
    ]
    aggregator.tick(queued, rows, now_ms=T0 + 10, force=True)
    assert rows[-1] == (T0 + 4, "valid", KEY, ACCOUNT, "192.0.2.3", 2, None)


def test_check_verdict_takes_enum_outcomes_and_address_objects() -> None:
    from ipaddress import ip_address

    from schemas.requests import VerificationOutcome

    at = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    checked = check_verdict(
        (VerificationOutcome.IP_NOT_ALLOWED, KEY, ACCOUNT, ip_address("2001:db8::1"), at, None)
    )
    assert checked == ("ip_not_allowed", KEY, ACCOUNT, "2001:db8::1", to_epoch_ms(at), None)


def _record(offset: int, rows: list[OutcomeRow], record_ms: int) -> SourceRecord:
    return SourceRecord(0, offset, None, pack_outcomes(rows, record_ms).value, record_ms)


def test_packed_outcomes_decode_and_plan_beside_requests_under_one_token() -> None:
    rows: list[OutcomeRow] = [
        (T0, "valid", KEY, ACCOUNT, "192.0.2.1", 41, None),
        (T0 + 1, "unknown", None, None, "203.0.113.9", 1, None),
    ]
    decoded = decode_requests(pack_outcomes(rows, T0 + 5).value)
    assert decoded.count == 0 and decoded.outcome_count == 2 and not decoded.rejected
    assert decoded.outcomes["count"] == [41, 1]
    assert decoded.outcomes["key_id"] == [KEY, None]

    late = (T0 - 40 * 86_400_000, "revoked", KEY, ACCOUNT, None, 1, None)
    plan = plan_ingest(
        "t.requests",
        [_record(3, rows, T0 + 5), _record(4, [rows[0], late], T0 + 5)],
        {0: 2},
        LIMITS,
    )
    (planned,) = plan.planned
    assert planned.block.count == 0
    assert planned.block.token == "t.requests|0:3-4"
    assert planned.outcome_count == 3
    assert planned.outcomes["src_offset"] == [3, 3, 4]
    (dead,) = plan.rejected
    assert dead.error.reason is InvalidReason.STALE_TIMESTAMP
    assert dead.row is not None and dead.row.row["outcome"] == "revoked"


def test_an_invalid_outcome_row_is_a_dead_letter_of_its_own() -> None:
    value = orjson.loads(pack_outcomes([(T0, "valid", KEY, ACCOUNT, None, 3, None)] * 2, T0).value)
    value["columns"]["count"][1] = 0
    decoded = decode_requests(orjson.dumps(value))
    assert decoded.outcome_count == 1
    (bad,) = decoded.rejected
    assert bad.index == 1 and bad.message.startswith("events[1].count:")
    assert bad.row["type"] == "verification.outcome"
