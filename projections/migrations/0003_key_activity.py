"""key_last_used and key_ip_seen (first seen, last seen, count per key and client IP)."""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS key_last_used (
            account_id LowCardinality(String),
            key_id String,
            last_used SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
            requests SimpleAggregateFunction(sum, UInt64)
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id)
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS key_last_used_mv TO key_last_used AS
        SELECT account_id, key_id, max(occurred_at) AS last_used, count() AS requests
        FROM requests_raw
        GROUP BY account_id, key_id
        """,
        f"""
        CREATE TABLE IF NOT EXISTS key_ip_seen (
            account_id LowCardinality(String),
            key_id String,
            client_ip String,
            first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
            last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
            requests SimpleAggregateFunction(sum, UInt64)
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id, client_ip)
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS key_ip_seen_mv TO key_ip_seen AS
        SELECT account_id, key_id, client_ip,
               min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
               count() AS requests
        FROM requests_raw
        GROUP BY account_id, key_id, client_ip
        """,
    ]
