"""Per-key reads: fine-grained usage_minute / usage_hour and a usage_day rollup.

A per-key summary touches a few dozen rows of each rollup, but MergeTree reads whole
granules: with the default 8,192 rows, every range read deserializes thousands of
other keys' t-digest states. This migration rebuilds
usage_minute and usage_hour with `index_granularity = 256` (copy, exchange, drop) and adds
`usage_day` (cascaded from usage_hour) so 30 days are ~30 rows per key, not 720.

The views are dropped first and recreated last, so run it with ingest stopped (the worker
migrates before it consumes). Every statement can be re-run after a crash: the scratch
tables are dropped before use, and the copy reads whichever table holds the data.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

GRANULARITY = 256

_COUNTERS = """
    requests SimpleAggregateFunction(sum, UInt64),
    errors_4xx SimpleAggregateFunction(sum, UInt64),
    errors_5xx SimpleAggregateFunction(sum, UInt64),
    renders SimpleAggregateFunction(sum, UInt64),
    bytes_out SimpleAggregateFunction(sum, UInt64),
    latency AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float32)
"""

_ROLLUP = """
    sum(requests) AS requests,
    sum(errors_4xx) AS errors_4xx,
    sum(errors_5xx) AS errors_5xx,
    sum(renders) AS renders,
    sum(bytes_out) AS bytes_out,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency) AS latency
"""


def _table(name: str, col: str, partition: str, ttl: str, ctx: MigrationContext) -> str:
    return f"""
        CREATE TABLE {name} (
            account_id LowCardinality(String),
            key_id String,
            {col} DateTime('UTC'),
            {_COUNTERS}
        )
        ENGINE = AggregatingMergeTree
        PARTITION BY {partition}
        ORDER BY (account_id, key_id, {col})
        TTL {ttl}
        SETTINGS index_granularity = {GRANULARITY},
                 non_replicated_deduplication_window = {ctx.dedup_window}
        """


def _rebuild(name: str, col: str, partition: str, ttl: str, ctx: MigrationContext) -> list[str]:
    scratch = f"{name}_0010"
    return [
        f"DROP TABLE IF EXISTS {scratch}",
        _table(scratch, col, partition, ttl, ctx),
        f"INSERT INTO {scratch} SELECT * FROM {name} SETTINGS insert_deduplicate = 0",
        f"EXCHANGE TABLES {name} AND {scratch}",
        f"DROP TABLE {scratch}",
    ]


def statements(ctx: MigrationContext) -> list[str]:
    hour_ttl = f"{ctx.raw_ttl_days + 366} DAY"
    return [
        "DROP VIEW IF EXISTS usage_minute_mv",
        "DROP VIEW IF EXISTS usage_hour_mv",
        "DROP VIEW IF EXISTS usage_day_mv",
        *_rebuild(
            "usage_minute",
            "minute",
            "toDate(minute)",
            f"minute + INTERVAL {ctx.minute_ttl_days} DAY",
            ctx,
        ),
        *_rebuild("usage_hour", "hour", "toYYYYMM(hour)", f"hour + INTERVAL {hour_ttl}", ctx),
        "DROP TABLE IF EXISTS usage_day",
        _table("usage_day", "day", "toYYYYMM(day)", f"day + INTERVAL {hour_ttl}", ctx),
        f"""
        INSERT INTO usage_day
        SELECT account_id, key_id, toStartOfDay(hour) AS day, {_ROLLUP}
        FROM usage_hour
        GROUP BY account_id, key_id, day
        SETTINGS insert_deduplicate = 0
        """,
        """
        CREATE MATERIALIZED VIEW usage_minute_mv TO usage_minute AS
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
        CREATE MATERIALIZED VIEW usage_hour_mv TO usage_hour AS
        SELECT account_id, key_id, toStartOfHour(minute) AS hour, {_ROLLUP}
        FROM usage_minute
        GROUP BY account_id, key_id, hour
        """,
        f"""
        CREATE MATERIALIZED VIEW usage_day_mv TO usage_day AS
        SELECT account_id, key_id, toStartOfDay(hour) AS day, {_ROLLUP}
        FROM usage_hour
        GROUP BY account_id, key_id, day
        """,
    ]
