"""key_ip_day: per key, UTC day and client IP, the first and last request and how many.

What it is for: the `unknown_ip` detector asks, for every key of a scope in one query,
which client addresses (or /24, /48 networks) it first used within the window and how many
others it used within the lookback (up to 30 days). `key_ip_seen` (0003) remembers each
address since the key's first request but cannot say whether it was used within the
lookback; `requests_raw` can, but scanning it at evaluation time reads every event of the
lookback (50 M at scale). A row here stands for one (key, day, address) however many
requests it had, and the table is ordered `(account_id, key_id, day, client_ip)` so an
evaluation reads its keys' rows by the ORDER BY prefix and a day range.

Columns: `first_seen` (min), `last_seen` (max) and `requests` (sum) are simple aggregates,
merged by the AggregatingMergeTree; a read aggregates them again (`min`, `max`, `sum`).
Requests without a client IP ("") are not kept.

TTL: rows live `TTL_DAYS` = 33 days after their day: the longest lookback (30 days,
`schemas.alerts.MAX_DURATION_S`), one day more because the reader rounds the lookback's
start down to a UTC day, and two days of slack (windows longer than a day, merges that
run late). Older rows would never be read.

Feeding: `key_ip_day_mv` from `requests_raw`, like `key_ip_seen_mv`; the view's blocks are
deduplicated in the target (`non_replicated_deduplication_window`), so a retried insert
lands once.

Data: the rows `requests_raw` still holds are aggregated into a scratch table that is then
renamed to `key_ip_day` in one step, so the rename marks the backfill as complete: a re-run
after a crash backfills again only while `key_ip_day` does not exist (and drops a half-filled
scratch table first); the view is created after the rename. Run with ingest stopped (the
worker migrates before it consumes), as 0011.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

TTL_DAYS = 33
_SCRATCH = "key_ip_day_0017"
_ROWS = """
    SELECT account_id, key_id, toDate(occurred_at) AS day, client_ip,
           min(occurred_at) AS first_seen, max(occurred_at) AS last_seen,
           count() AS requests
    FROM requests_raw
    WHERE client_ip != ''{since}
    GROUP BY account_id, key_id, day, client_ip
"""


def _table(name: str, ctx: MigrationContext) -> str:
    return f"""
        CREATE TABLE {name} (
            account_id LowCardinality(String),
            key_id String,
            day Date,
            client_ip String,
            first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
            last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
            requests SimpleAggregateFunction(sum, UInt64)
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id, day, client_ip)
        TTL day + INTERVAL {TTL_DAYS} DAY
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """


def _backfill(ctx: MigrationContext) -> list[str]:
    """Statements filling `key_ip_day` from `requests_raw` (none once it exists)."""
    if "key_ip_day" in ctx.existing_tables:
        return []
    since = f" AND toDate(occurred_at) >= today() - {TTL_DAYS}"
    return [
        f"DROP TABLE IF EXISTS {_SCRATCH}",
        _table(_SCRATCH, ctx),
        f"INSERT INTO {_SCRATCH} {_ROWS.format(since=since)} SETTINGS insert_deduplicate = 0",
        f"RENAME TABLE {_SCRATCH} TO key_ip_day",
    ]


def statements(ctx: MigrationContext) -> list[str]:
    return [
        *_backfill(ctx),
        "CREATE MATERIALIZED VIEW IF NOT EXISTS key_ip_day_mv TO key_ip_day AS "
        + _ROWS.format(since=""),
    ]
