"""Reads of `ingest_batches`, the write-ahead log of ingest: how far each partition is
written, what crash recovery must look at (`streams.worker.recovery_plan`), and the newest
event time that has landed. The one copy of this SQL.

Each row's `max_occurred_at` is its block's newest event time capped at the block's
newest Kafka record timestamp (the ingest agent writes it so), so the newest event time
never runs ahead of the broker, whatever a producer wrote into `occurred_at`.
"""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from schemas.utc import as_utc
from streams.worker.ports import LoggedWrite, OffsetRange

_WATERMARKS = (
    "SELECT p, max(e) FROM ingest_batches ARRAY JOIN partitions AS p, end_offsets AS e "
    "WHERE topic = {topic:String} GROUP BY p"
)
_RECOVERY = (
    "SELECT writer, seq, token, partitions, start_offsets, end_offsets, checkpoint "
    "FROM ingest_batches WHERE topic = {topic:String} AND token IN ("
    "SELECT argMax(token, seq) FROM ingest_batches WHERE topic = {topic:String} GROUP BY writer)"
)
_LATER = (
    "SELECT count() FROM ingest_batches WHERE created_at >= "
    "(SELECT min(created_at) FROM ingest_batches WHERE token = {token:String})"
)
_NEWEST = (
    "SELECT max(max_occurred_at), count() FROM ingest_batches "
    "WHERE topic = {topic:String} AND events > 0"
)


def partition_watermarks(client: Client, topic: str) -> dict[int, int]:
    """The highest source offset written, per partition of `topic`."""
    rows = client.query(_WATERMARKS, parameters={"topic": topic}).result_rows
    return {int(p): int(e) for p, e in rows}


def recovery_rows(client: Client, topic: str) -> list[LoggedWrite]:
    """Every writer's newest row of `topic`, and every row under one of those tokens."""
    rows = client.query(_RECOVERY, parameters={"topic": topic}).result_rows
    return [
        LoggedWrite(
            str(writer),
            int(seq),
            str(token),
            tuple(
                OffsetRange(int(p), int(s), int(e))
                for p, s, e in zip(parts, starts, ends, strict=True)
            ),
            bool(checkpoint),
        )
        for writer, seq, token, parts, starts, ends, checkpoint in rows
    ]


def later_log_rows(client: Client, tokens: list[str]) -> dict[str, int]:
    """Per token, the rows written since its first row, itself included. The workers
    share no counter, so "since" is by `created_at`, which the ClickHouse server stamps
    (one clock for every writer), counted from the same millisecond on."""
    return {
        token: int(client.query(_LATER, parameters={"token": token}).result_rows[0][0])
        for token in tokens
    }


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
