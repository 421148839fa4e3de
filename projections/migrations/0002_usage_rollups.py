"""usage_minute <- requests_raw and usage_hour <- usage_minute (cascaded materialized views).

Counters are SimpleAggregateFunction(sum); latency is a t-digest state for p50/p95/p99.
Both targets keep insert deduplication so a retried insert never double-counts.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

_COUNTERS = """
    requests SimpleAggregateFunction(sum, UInt64),
    errors_4xx SimpleAggregateFunction(sum, UInt64),
    errors_5xx SimpleAggregateFunction(sum, UInt64),
    renders SimpleAggregateFunction(sum, UInt64),
    bytes_out SimpleAggregateFunction(sum, UInt64),
    latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float32)
"""


def statements(ctx: MigrationContext) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS usage_minute (
            account_id LowCardinality(String),
            key_id String,
            minute DateTime('UTC'),
            {_COUNTERS}
        )
        ENGINE = AggregatingMergeTree
        PARTITION BY toDate(minute)
        ORDER BY (account_id, key_id, minute)
        TTL minute + INTERVAL {ctx.minute_ttl_days} DAY
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS usage_minute_mv TO usage_minute AS
        SELECT
            account_id,
            key_id,
            toStartOfMinute(occurred_at) AS minute,
            count() AS requests,
            countIf(status >= 400 AND status < 500) AS errors_4xx,
            countIf(status >= 500) AS errors_5xx,
            countIf(is_render) AS renders,
            sum(bytes_out) AS bytes_out,
            quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms) AS latency
        FROM requests_raw
        GROUP BY account_id, key_id, minute
        """,
        f"""
        CREATE TABLE IF NOT EXISTS usage_hour (
            account_id LowCardinality(String),
            key_id String,
            hour DateTime('UTC'),
            {_COUNTERS}
        )
        ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(hour)
        ORDER BY (account_id, key_id, hour)
        TTL hour + INTERVAL {ctx.raw_ttl_days + 366} DAY
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hour_mv TO usage_hour AS
        SELECT
            account_id,
            key_id,
            toStartOfHour(minute) AS hour,
            sum(requests) AS requests,
            sum(errors_4xx) AS errors_4xx,
            sum(errors_5xx) AS errors_5xx,
            sum(renders) AS renders,
            sum(bytes_out) AS bytes_out,
            quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency) AS latency
        FROM usage_minute
        GROUP BY account_id, key_id, hour
        """,
    ]
