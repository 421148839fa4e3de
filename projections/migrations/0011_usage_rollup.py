"""One rollup table, `usage_rollup`, for the minute, hour and day rows of every key.

Why: a per-key 24h/7d/30d summary reads a few dozen rows of each tier, and on chDB each
SELECT of a UNION costs a fixed analysis and planning time whatever it reads; with the
three tiers in one table ordered by `(account_id, key_id, tier, bucket)` the summary is
one SELECT. The measurements are in docs/decisions.md.

Feeding: `requests_raw` -> `usage_stage_mv` (per-minute states) -> `usage_minute_stage`
(a Null table: it keeps nothing and only triggers its views) -> three views that write
the minute rows as they are and the hour and day rows merged from them. Each view
deduplicates its own blocks in the target (its tokens derive from the insert's token and
the view), so a retried insert still lands exactly once in every tier.

Layout, each choice measured with `python -m bench.api` (figures in docs/decisions.md):
- no partitioning: a 30-day read then touches one part, not two monthly ones;
  TTL merges remove expired minute rows either way (hour and day rows outlive any
  month, so monthly partitions could never be dropped whole);
- `index_granularity = 256` and compressed blocks of 8-64 KiB: a point read decompresses
  a few small blocks around its granules instead of 64 KiB-1 MiB ones.
TTL: minute rows live `minute_ttl_days`, hour and day rows `raw_ttl_days + 366` days.

Data: the rows of `usage_minute`, `usage_hour` and `usage_day` are copied into a scratch
table that is then renamed to `usage_rollup` in one step, so the rename marks the copy as
complete: a re-run after a crash copies again only if `usage_rollup` does not exist yet.
Run with ingest stopped (the worker migrates before it consumes).
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

_COUNTERS = ("requests", "errors_4xx", "errors_5xx", "renders", "bytes_out")
_STATE = "AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float32)"
_OLD = (("usage_minute", "minute"), ("usage_hour", "hour"), ("usage_day", "day"))
_SCRATCH = "usage_rollup_0011"


def _rollup_table(name: str, ctx: MigrationContext) -> str:
    counters = ",\n".join(f"{c} SimpleAggregateFunction(sum, UInt64)" for c in _COUNTERS)
    return f"""
        CREATE TABLE {name} (
            account_id LowCardinality(String),
            key_id String,
            tier Enum8('minute' = 1, 'hour' = 2, 'day' = 3),
            bucket DateTime('UTC'),
            {counters},
            latency {_STATE}
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id, tier, bucket)
        TTL bucket + INTERVAL {ctx.minute_ttl_days} DAY DELETE WHERE tier = 'minute',
            bucket + INTERVAL {ctx.raw_ttl_days + 366} DAY
        SETTINGS index_granularity = 256,
                 min_compress_block_size = 8192,
                 max_compress_block_size = 65536,
                 non_replicated_deduplication_window = {ctx.dedup_window}
        """


def _merged_view(tier: str, start_of: str) -> str:
    sums = ", ".join(f"sum({c}) AS {c}" for c in _COUNTERS)
    return f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS usage_rollup_{tier}_mv TO usage_rollup AS
        SELECT account_id, key_id, '{tier}' AS tier, {start_of}(minute) AS bucket, {sums},
            quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency) AS latency
        FROM usage_minute_stage
        GROUP BY account_id, key_id, bucket
        """


def _copy(ctx: MigrationContext) -> list[str]:
    """Statements moving the three old tables into `usage_rollup` (none once it exists)."""
    if "usage_rollup" in ctx.existing_tables:
        return []
    cols = ", ".join(_COUNTERS)
    copies = [
        f"INSERT INTO {_SCRATCH} SELECT account_id, key_id, '{col}', {col}, {cols}, latency "
        f"FROM {table} SETTINGS insert_deduplicate = 0"
        for table, col in _OLD
        if table in ctx.existing_tables
    ]
    return [
        f"DROP TABLE IF EXISTS {_SCRATCH}",
        _rollup_table(_SCRATCH, ctx),
        *copies,
        f"RENAME TABLE {_SCRATCH} TO usage_rollup",
    ]


def statements(ctx: MigrationContext) -> list[str]:
    counters = ",\n".join(f"{c} UInt64" for c in _COUNTERS)
    return [
        "DROP VIEW IF EXISTS usage_minute_mv",
        "DROP VIEW IF EXISTS usage_hour_mv",
        "DROP VIEW IF EXISTS usage_day_mv",
        *_copy(ctx),
        *(f"DROP TABLE IF EXISTS {table}" for table, _ in _OLD),
        f"""
        CREATE TABLE IF NOT EXISTS usage_minute_stage (
            account_id LowCardinality(String),
            key_id String,
            minute DateTime('UTC'),
            {counters},
            latency {_STATE}
        ) ENGINE = Null
        """,
        f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS usage_rollup_minute_mv TO usage_rollup AS
        SELECT account_id, key_id, 'minute' AS tier, minute AS bucket,
            {", ".join(_COUNTERS)}, latency
        FROM usage_minute_stage
        """,
        _merged_view("hour", "toStartOfHour"),
        _merged_view("day", "toStartOfDay"),
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS usage_stage_mv TO usage_minute_stage AS
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
    ]
