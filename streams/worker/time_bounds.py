"""Time bounds of request events relative to their Kafka record's timestamp (pure).

An event's `occurred_at` may be at most `max_future_ms` after the timestamp of the
record that carries it (else `future_timestamp`), and at most `max_age_ms` before it
(the raw retention; else `stale_timestamp`). The bounds depend only on the record, never
on the worker's clock, so re-reading the same records (crash recovery, `keypulse
replay`) decides the same. A record without a timestamp is checked against the static
schema bounds only.

In a batch, each out-of-bounds row becomes a `RejectedRow` (its index in the batch, and
the row as a single `request.completed` object, `schemas.request_columns.row_as_event`)
and the other rows stay valid. A single
event out of bounds raises `InvalidMessage`: the record is dead-lettered as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.codec import SUPPORTED_VERSIONS, DecodedRequests, RejectedRow
from schemas.errors import InvalidMessage, InvalidReason
from schemas.request_columns import row_as_event
from schemas.wire_time import format_occurred_at as _iso

SINGLE_TYPE = "request.completed"


@dataclass(frozen=True)
class TimeBounds:
    max_future_ms: int
    """Latest allowed `occurred_at`, after the record's timestamp."""
    max_age_ms: int
    """Earliest allowed `occurred_at`, before the record's timestamp (the raw retention)."""


def _violation(
    field: str, occurred_ms: int, record_ms: int, bounds: TimeBounds
) -> InvalidMessage | None:
    """Why `occurred_ms` is out of bounds for a record stamped `record_ms` (None: it is not)."""
    if occurred_ms > record_ms + bounds.max_future_ms:
        return InvalidMessage(
            InvalidReason.FUTURE_TIMESTAMP,
            f"{field}: {_iso(occurred_ms)} is more than {bounds.max_future_ms / 1000:g} s "
            f"after its Kafka record's timestamp {_iso(record_ms)} "
            "(KEYPULSE_WORKER_MAX_FUTURE_S); check the producer's clock",
        )
    if occurred_ms < record_ms - bounds.max_age_ms:
        return InvalidMessage(
            InvalidReason.STALE_TIMESTAMP,
            f"{field}: {_iso(occurred_ms)} is more than {bounds.max_age_ms / 86_400_000:g} "
            f"days before its Kafka record's timestamp {_iso(record_ms)}, older than the raw "
            "retention (KEYPULSE_CLICKHOUSE_RAW_TTL_DAYS)",
        )
    return None


def _batch_indices(decoded: DecodedRequests) -> list[int]:
    """The batch index of each valid row, in order (the decoder's rejected rows are gaps)."""
    gaps = {r.index for r in decoded.rejected}
    total = decoded.count + len(gaps)
    return [i for i in range(total) if i not in gaps]


def check_time_bounds(
    decoded: DecodedRequests, record_ms: int | None, bounds: TimeBounds
) -> DecodedRequests:
    """`decoded` (from a record stamped `record_ms`) with its out-of-bounds rows moved to
    `rejected`; raises `InvalidMessage` when the record is a single event out of bounds."""
    times = decoded.columns["occurred_at_ms"]
    if record_ms is None or not times:
        return decoded
    earliest, latest = record_ms - bounds.max_age_ms, record_ms + bounds.max_future_ms
    if earliest <= min(times) and max(times) <= latest:
        return decoded
    if decoded.single:
        single_error = _violation("occurred_at", times[0], record_ms, bounds)
        if single_error is not None:
            raise single_error
        return decoded
    indices = _batch_indices(decoded)
    keep: list[int] = []
    rejected = list(decoded.rejected)
    for position, occurred in enumerate(times):
        index = indices[position]
        error = _violation(f"events[{index}].occurred_at_ms", occurred, record_ms, bounds)
        if error is None:
            keep.append(position)
            continue
        row = row_as_event(decoded.columns, position, SUPPORTED_VERSIONS[SINGLE_TYPE])
        rejected.append(RejectedRow(index, error.reason, error.message, row))
    columns = {name: [col[p] for p in keep] for name, col in decoded.columns.items()}
    rejected.sort(key=lambda r: r.index)
    return DecodedRequests(columns=columns, count=len(keep), rejected=tuple(rejected))
