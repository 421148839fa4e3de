"""key_status_rollup: per key, the responses of each error status (>= 400) per minute and
per hour, for the `error_pattern` detector's single statuses (401, 403, 429); its classes
4xx, 5xx and all read `usage_rollup`'s `errors_4xx`/`errors_5xx`.

Layout: one table, minute and hour rows side by side as in `usage_rollup` (`tier`, the
same enum names, so one row condition reads both tables), ordered by
`(account_id, key_id, tier, bucket, status)`: a batched read narrows by account and key,
then by the listed buckets. Only statuses >= 400 are kept, so the table is as small as
the errors are rare; requests come from `usage_rollup`.

Feeding: two materialized views from `requests_raw` (`status >= 400` only), one writing
minute rows and one hour rows, each grouped by (account, key, bucket, status) within the
insert block. Each view deduplicates its own blocks in the target (tokens derived from the
insert's token and the view, `non_replicated_deduplication_window`), so a retried insert
lands exactly once in each tier.

TTL: minute rows `minute_ttl_days` (32: a window of up to 30 days reads its partial head
and tail hours from minute rows, as `usage_rollup` does); hour rows 62 days: a window of
up to 30 days plus a baseline lookback of up to 30 days before it, and two days to spare.

Data: the existing `requests_raw` rows (kept `raw_ttl_days`) are rolled up into a scratch
table that is then renamed `key_status_rollup` in one step, so the rename marks the copy as
complete: a re-run after a crash copies again only if the table does not exist yet. The
views are created after it. Run with ingest stopped (the worker migrates before it consumes).
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

TABLE = "key_status_rollup"
HOUR_TTL_DAYS = 62
_SCRATCH = "key_status_rollup_0018"
_TIERS = (("minute", "toStartOfMinute"), ("hour", "toStartOfHour"))


def _table(name: str, ctx: MigrationContext) -> str:
    return f"""
        CREATE TABLE {name} (
            account_id LowCardinality(String),
            key_id String,
            tier Enum8('minute' = 1, 'hour' = 2),
            bucket DateTime('UTC'),
            status UInt16,
            responses SimpleAggregateFunction(sum, UInt64)
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id, tier, bucket, status)
        TTL bucket + INTERVAL {ctx.minute_ttl_days} DAY DELETE WHERE tier = 'minute',
            bucket + INTERVAL {HOUR_TTL_DAYS} DAY
        SETTINGS index_granularity = 256,
                 non_replicated_deduplication_window = {ctx.dedup_window}
        """


def _rollup_select(tier: str, start_of: str) -> str:
    return f"""
        SELECT account_id, key_id, '{tier}' AS tier, {start_of}(occurred_at) AS bucket,
            status, count() AS responses
        FROM requests_raw
        WHERE status >= 400
        GROUP BY account_id, key_id, bucket, status
        """


def _copy(ctx: MigrationContext) -> list[str]:
    """Roll the kept raw rows up into the new table (nothing once it exists)."""
    if TABLE in ctx.existing_tables:
        return []
    return [
        f"DROP TABLE IF EXISTS {_SCRATCH}",
        _table(_SCRATCH, ctx),
        *(
            f"INSERT INTO {_SCRATCH} {_rollup_select(tier, start_of)} "
            "SETTINGS insert_deduplicate = 0"
            for tier, start_of in _TIERS
        ),
        f"RENAME TABLE {_SCRATCH} TO {TABLE}",
    ]


def statements(ctx: MigrationContext) -> list[str]:
    return [
        *_copy(ctx),
        *(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS key_status_{tier}_mv TO {TABLE} AS "
            f"{_rollup_select(tier, start_of)}"
            for tier, start_of in _TIERS
        ),
    ]
