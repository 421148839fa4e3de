"""`projections.writers.ClickHouseIngestStore` on chDB: the declared insert types convert
exactly into the tables' types, and written rows read back as the events they came from,
whether `encode` prepared them ahead or `write` encoded them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from projections.writers import (
    _LOG_COLUMNS,
    _LOG_SENT_TYPES,
    RAW_COLUMNS,
    RAW_SENT_TYPES,
    ClickHouseIngestStore,
)
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest

pytestmark = pytest.mark.clickhouse

CONVERTED = {("String", "UUID"), ("String", "LowCardinality(String)")}
"""(sent, stored) pairs ClickHouse converts on insert without loss."""


def _table_types(client: Client, table: str) -> dict[str, str]:
    rows = client.query(f"DESCRIBE TABLE {table}").result_rows
    return {str(r[0]): str(r[1]) for r in rows}


@pytest.mark.parametrize(
    ("table", "columns", "sent"),
    [
        ("requests_raw", RAW_COLUMNS, RAW_SENT_TYPES),
        ("ingest_batches", _LOG_COLUMNS, _LOG_SENT_TYPES),
    ],
)
def test_sent_types_are_the_tables_or_convert_exactly(
    migrated_client: Client, table: str, columns: tuple[str, ...], sent: tuple[str, ...]
) -> None:
    stored = _table_types(migrated_client, table)
    assert len(columns) == len(sent)
    for column, sent_as in zip(columns, sent, strict=True):
        assert sent_as == stored[column] or (sent_as, stored[column]) in CONVERTED, column


@pytest.mark.parametrize("encoded_ahead", [True, False], ids=["encoded-ahead", "encoded-by-write"])
def test_written_rows_read_back_as_their_events(
    migrated_client: Client, encoded_ahead: bool
) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        RequestCompleted(
            occurred_at=now - timedelta(milliseconds=rng.randint(0, 86_400_000)),
            key_id=f"key_writer{rng.randint(0, 9):03d}",
            account_id=f"acc_writer{rng.randint(0, 2)}",
            method=rng.choice(["GET", "POST", "DELETE"]),
            route=rng.choice(["/v1/a", "/v1/b/c"]),
            status=rng.choice([200, 404, 503]),
            latency_ms=rng.choice([0.0, 1.5, 250.25]),
            client_ip=rng.choice(["192.0.2.7", "2001:db8::1"]),
            bytes_out=rng.choice([0, 1, 4_294_967_295]),
            is_render=rng.random() < 0.5,
            watermarked=rng.random() < 0.5,
        )
        for _ in range(500)
    ]
    record = SourceRecord(2, 77, None, encode(RequestBatch.from_events(events)), to_epoch_ms(now))
    limits = IngestLimits(10_000, 1 << 24, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
    (block,) = plan_ingest("w.requests", [record], {}, limits).blocks
    store = ClickHouseIngestStore(migrated_client)
    if encoded_ahead:
        store.encode(block)  # as the agent does on its decode thread
        assert isinstance(block.encoded, bytes)
    store.write(block)

    rows = migrated_client.query(
        "SELECT toString(event_id), toUnixTimestamp64Milli(occurred_at), key_id, account_id, "
        "method, route, status, latency_ms, client_ip, bytes_out, is_render, watermarked, "
        "src_partition, src_offset FROM requests_raw"
    ).result_rows
    expected = {
        (
            str(e.event_id),
            to_epoch_ms(e.occurred_at),
            e.key_id,
            e.account_id,
            e.method,
            e.route,
            e.status,
            e.latency_ms,
            str(e.client_ip),
            e.bytes_out,
            e.is_render,
            e.watermarked,
            2,
            77,
        )
        for e in events
    }
    assert {tuple(r) for r in rows} == expected
    newest = migrated_client.query(
        "SELECT toUnixTimestamp64Milli(max_occurred_at), topic, events FROM ingest_batches"
    ).result_rows
    assert newest == [(max(to_epoch_ms(e.occurred_at) for e in events), "w.requests", 500)]
