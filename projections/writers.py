"""ClickHouse adapters for the agents' ports: request rows, verification outcomes, ingest
log and key registry."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

from projections.counters import GrowingCounter
from projections.ingest_log import later_log_rows, partition_watermarks, recovery_rows
from schemas.codec import OUTCOME_COLUMNS, decode_key_event, encode
from schemas.key_ledger import KeyRecord
from schemas.keys import KEY_EVENT_TYPES, KeyEventModel, KeyLifecycle
from schemas.request_columns import COLUMNS, Columns
from streams.worker.ports import (
    AccountHistory,
    AuditEntry,
    InsertBlock,
    KeyChanges,
    LoggedWrite,
    OffsetRange,
)

_SOURCE = (*COLUMNS, "src_partition", "src_offset")
"""Block columns in insert order: the batch columns plus the Kafka source position."""
RAW_COLUMNS = tuple("occurred_at" if c == "occurred_at_ms" else c for c in _SOURCE)
"""`requests_raw` columns (epoch milliseconds go into the DateTime64 `occurred_at`)."""

_SENT_AS = {
    "event_id": "String",
    "occurred_at": "DateTime64(3, 'UTC')",
    "account_id": "String",
    "key_id": "String",
    "method": "String",
    "route": "String",
    "status": "UInt16",
    "latency_ms": "Float32",
    "client_ip": "String",
    "bytes_out": "UInt64",
    "is_render": "Bool",
    "watermarked": "Bool",
    "src_partition": "UInt16",
    "src_offset": "UInt64",
}
RAW_SENT_TYPES = tuple(_SENT_AS[c] for c in RAW_COLUMNS)
"""The types the `requests_raw` columns are sent as: the table's own, except that the UUID
and the LowCardinality strings go as plain strings, which ClickHouse converts exactly on
insert (in C++, instead of encoding UUIDs and dictionaries in Python). Declared, so an
insert needs no DESCRIBE first. A contract test holds them to the table."""

_RAW_TYPES = [get_from_name(name) for name in RAW_SENT_TYPES]


def native_rows(columns: Columns) -> bytes:
    """A block's `requests_raw` columns in ClickHouse's Native format (one Native block,
    the types `RAW_SENT_TYPES`), encoded by clickhouse-connect's own column writers."""
    data = [columns[name] for name in _SOURCE]
    context = InsertContext(
        "requests_raw",
        list(RAW_COLUMNS),
        _RAW_TYPES,
        data=data,
        column_oriented=True,
        block_size=max(1, len(data[0])),
    )
    chunks = list(NativeTransform.build_insert(context))
    if context.insert_exception is not None:
        raise context.insert_exception
    head = memoryview(chunks[0])
    start = chunks[0].index(b"\n") + 1  # past the "INSERT INTO ... FORMAT Native" line
    return b"".join([head[start:], *chunks[1:]])


INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}
"""Synchronous, deduplicated inserts; MV targets deduplicate on their own too."""


OUTCOME_TABLE_COLUMNS = (
    "event_id",
    "occurred_at",
    "outcome",
    "key_id",
    "account_id",
    "client_ip",
    "count",
    "presented_digest",
    "src_partition",
    "src_offset",
)
"""`verification_outcomes` columns in insert order (the block's outcome columns:
`OUTCOME_COLUMNS`, then the source position)."""
OUTCOME_SENT_TYPES = (
    "String",
    "DateTime64(3, 'UTC')",
    "String",
    "String",
    "String",
    "String",
    "UInt32",
    "String",
    "UInt16",
    "UInt64",
)
"""As sent: ids and LowCardinality strings as plain strings (converted on insert); a row
without key, account, client IP or presented digest has "" there."""
_OUTCOME_SOURCE = (*OUTCOME_COLUMNS, "src_partition", "src_offset")
_NULLABLE_TEXT = frozenset(("key_id", "account_id", "client_ip", "presented_digest"))


def outcome_columns(columns: Columns) -> list[list[Any]]:
    """A block's outcome columns as `verification_outcomes` insert data (None -> "")."""
    return [
        ["" if v is None else v for v in columns[name]] if name in _NULLABLE_TEXT else columns[name]
        for name in _OUTCOME_SOURCE
    ]


_LOG_COLUMNS = (
    "topic",
    "seq",
    "writer",
    "token",
    "partitions",
    "start_offsets",
    "end_offsets",
    "events",
    "max_occurred_at",
    "checkpoint",
)
_LOG_SENT_TYPES = (
    "String",
    "UInt64",
    "String",
    "String",
    "Array(UInt16)",
    "Array(UInt64)",
    "Array(UInt64)",
    "UInt32",
    "DateTime64(3, 'UTC')",
    "Bool",
)
"""`ingest_batches` columns as sent (`topic` converts to its LowCardinality type)."""


class ClickHouseIngestStore:
    """`IngestStore` (and the ingest agent's `OutcomeStore`) over clickhouse-connect. Not
    thread-safe: one instance per writing thread. Several workers may write into one
    database, each through its own instance (and a replay into its scratch database).

    `ingest_batches.seq` orders the rows of one writer (`writer`: this instance, a fresh
    id per process start): a `GrowingCounter`, never the wall clock, so a clock stepped
    back across a restart cannot make an older row look newer. Several workers each
    write their own rows into one `ingest_batches`; their seqs interleave in no order.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._seq = GrowingCounter(client, ("ingest_batches", "seq"))
        self.writer = uuid4().hex

    def watermarks(self, topic: str) -> dict[int, int]:
        return partition_watermarks(self._client, topic)

    def recovery_log(self, topic: str) -> list[LoggedWrite]:
        return recovery_rows(self._client, topic)

    def later_writes(self, tokens: list[str]) -> dict[str, int]:
        return later_log_rows(self._client, tokens)

    def _log(
        self,
        topic: str,
        token: str,
        ranges: list[OffsetRange],
        events: int = 0,
        max_occurred_at_ms: int = 0,
        checkpoint: bool = False,
    ) -> None:
        row = [
            topic,
            self._seq.next(),
            self.writer,
            token,
            [r.partition for r in ranges],
            [r.start for r in ranges],
            [r.end for r in ranges],
            events,
            max_occurred_at_ms,
            checkpoint,
        ]
        self._client.insert(
            "ingest_batches",
            [row],
            column_names=_LOG_COLUMNS,
            column_type_names=_LOG_SENT_TYPES,
            settings={"async_insert": 0},
        )

    def checkpoint(self, topic: str) -> None:
        """Record that everything up to the current watermarks is complete.

        Written after a replay: the rebuilt tables were filled through other materialized
        views, whose deduplication tokens differ, so re-applying the last insert through
        the live views would count it twice.
        """
        marks = self.watermarks(topic)
        if marks:
            ranges = [OffsetRange(p, marks[p], marks[p]) for p in sorted(marks)]
            self._log(topic, "checkpoint", ranges, checkpoint=True)

    def encode(self, block: InsertBlock) -> None:
        """Encode the rows in Native format ahead of `write` (CPU only, any thread)."""
        if block.count:
            block.encoded = native_rows(block.columns)

    def write(self, block: InsertBlock) -> None:
        self._log(block.topic, block.token, block.ranges, block.count, block.max_occurred_at_ms)
        if block.count == 0:
            return
        rows = block.encoded if isinstance(block.encoded, bytes) else native_rows(block.columns)
        self._client.raw_insert(
            "requests_raw",
            RAW_COLUMNS,
            rows,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": block.token},
            fmt="Native",
        )

    def write_outcomes(self, token: str, columns: Columns, count: int) -> None:
        """Insert a block's verification outcome rows with the block's token (after
        `write` recorded its ranges): written again, the same rows are dropped."""
        if not count:
            return
        self._client.insert(
            "verification_outcomes",
            outcome_columns(columns),
            column_names=OUTCOME_TABLE_COLUMNS,
            column_type_names=OUTCOME_SENT_TYPES,
            column_oriented=True,
            settings={**INSERT_SETTINGS, "insert_deduplication_token": token},
        )


_KEY_COLUMNS = (
    "account_id",
    "key_id",
    "name",
    "key_type",
    "access",
    "status",
    "secret_hash",
    "hint",
    "created_at",
    "created_by",
    "updated_at",
    "revoked_at",
    "revoke_reason",
    "deleted_at",
    "allowed_cidrs",
    "expires_at",
    "replaces",
    "replaced_by",
    "seq",
)
_ACCOUNT_COLUMNS = ("account_id", "plan", "seq", "head", "created_at", "updated_at")
_AUDIT_COLUMNS = (
    "account_id",
    "seq",
    "event_id",
    "type",
    "key_id",
    "actor",
    "source_ip",
    "occurred_at",
    "detail",
    "event",
)
_ANOMALY_COLUMNS = (
    "account_id",
    "key_id",
    "event_id",
    "event_type",
    "anomaly",
    "detail",
    "occurred_at",
    "version",
)
_SYNC_INSERT: dict[str, Any] = {"async_insert": 0, "insert_deduplicate": 1}


def key_row(record: KeyRecord) -> list[Any]:
    """A `keys` row in `_KEY_COLUMNS` order."""
    return [
        record.account_id,
        record.key_id,
        record.name,
        record.key_type.value,
        record.access.value,
        record.status.value,
        record.secret_hash,
        record.hint,
        record.created_at,
        record.created_by,
        record.updated_at,
        record.revoked_at,
        record.revoke_reason.value if record.revoke_reason is not None else None,
        record.deleted_at,
        list(record.allowed_cidrs),
        record.expires_at,
        record.replaces,
        record.replaced_by,
        record.seq,
    ]


def audit_row(entry: AuditEntry) -> list[Any]:
    """A `key_audit` row in `_AUDIT_COLUMNS` order (`event`: the codec's encoding)."""
    event = entry.event
    return [
        event.account_id,
        event.seq,
        event.event_id,
        event.type,
        event.key_id if isinstance(event, KeyLifecycle) else "",
        event.actor,
        None if event.source_ip is None else str(event.source_ip),
        event.occurred_at,
        entry.detail,
        encode(event).decode(),
    ]


class ClickHouseKeyStore:
    """`KeyStore` over `key_audit`, `keys`, `accounts` and `key_anomalies`: one insert per
    table and save. `key_audit` is read with FINAL (one row per account and seq); times
    are aware UTC datetimes, as saved."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def load(self, account_ids: list[str]) -> dict[str, AccountHistory]:
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        applied: dict[str, list[KeyEventModel]] = {a: [] for a in ids}
        rows = self._client.query(
            "SELECT account_id, event FROM key_audit FINAL "
            "WHERE account_id IN {ids:Array(String)} ORDER BY account_id, seq",
            parameters={"ids": ids},
        ).result_rows
        for account_id, event in rows:
            applied[account_id].append(decode_key_event(event.encode()))
        refused: dict[str, set[UUID]] = {a: set() for a in ids}
        rows = self._client.query(
            "SELECT DISTINCT account_id, event_id FROM key_anomalies "
            "WHERE account_id IN {ids:Array(String)} AND event_type IN {types:Array(String)}",
            parameters={"ids": ids, "types": list(KEY_EVENT_TYPES)},
        ).result_rows
        for account_id, event_id in rows:
            refused[account_id].add(event_id)
        return {a: AccountHistory(a, applied[a], frozenset(refused[a])) for a in ids}

    def _insert(self, table: str, rows: list[list[Any]], columns: tuple[str, ...]) -> None:
        if rows:
            self._client.insert(table, rows, column_names=columns, settings=_SYNC_INSERT)

    def save(self, changes: KeyChanges) -> None:
        self._insert(
            "key_anomalies",
            [[getattr(a, c) for c in _ANOMALY_COLUMNS] for a in changes.anomalies],
            _ANOMALY_COLUMNS,
        )
        self._insert("key_audit", [audit_row(e) for e in changes.audit], _AUDIT_COLUMNS)
        self._insert("keys", [key_row(k) for k in changes.keys], _KEY_COLUMNS)
        self._insert(
            "accounts",
            [[getattr(a, c) for c in _ACCOUNT_COLUMNS] for a in changes.accounts],
            _ACCOUNT_COLUMNS,
        )
