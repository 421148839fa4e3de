"""requests_raw: one row per request event, with the Kafka partition and offset it came from."""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS requests_raw (
            event_id UUID,
            occurred_at DateTime64(3, 'UTC'),
            account_id LowCardinality(String),
            key_id String,
            method LowCardinality(String),
            route LowCardinality(String),
            status UInt16,
            latency_ms Float32,
            client_ip String,
            bytes_out UInt64,
            is_render Bool,
            watermarked Bool,
            src_partition UInt16,
            src_offset UInt64,
            ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = MergeTree
        PARTITION BY toDate(occurred_at)
        ORDER BY (account_id, key_id, occurred_at)
        TTL toDateTime(occurred_at) + INTERVAL {ctx.raw_ttl_days} DAY
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
    ]
