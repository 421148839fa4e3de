"""Reads of `ingest_batches`, the write-ahead log of ingest: how far each partition is
written, and the newest event time that has landed. The one copy of this SQL.

Each row's `max_occurred_at` is its block's newest event time capped at the block's
newest Kafka record timestamp (the ingest agent writes it so), so the newest event time
never runs ahead of the broker, whatever a producer wrote into `occurred_at`.
"""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from schemas.utc import as_utc

_WATERMARKS = (
    "SELECT p, max(e) FROM ingest_batches ARRAY JOIN partitions AS p, end_offsets AS e "
    "WHERE topic = {topic:String} GROUP BY p"
)
_NEWEST = (
    "SELECT max(max_occurred_at), count() FROM ingest_batches "
    "WHERE topic = {topic:String} AND events > 0"
)


def partition_watermarks(client: Client, topic: str) -> dict[int, int]:
    """The highest source offset written, per partition of `topic`."""
    rows = client.query(_WATERMARKS, parameters={"topic": topic}).result_rows
    return {int(p): int(e) for p, e in rows}


def newest_event_time(client: Client, topic: str) -> datetime | None:
    """The latest `occurred_at` among landed events of `topic` (None before any)."""
    rows = client.query(_NEWEST, parameters={"topic": topic}).result_rows
    if not rows or not rows[0][1]:
        return None
    return as_utc(rows[0][0])


def event_age_s(newest: datetime | None, now: datetime) -> float | None:
    """Seconds from the newest landed event time to `now`, never below 0 (a record
    timestamp may be a little ahead of the reader's clock); None before any event."""
    if newest is None:
        return None
    return max(0.0, (as_utc(now) - newest).total_seconds())
