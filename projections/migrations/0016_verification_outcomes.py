"""verification_outcomes: one row per verification outcome event, and key_verified_last.

- `verification_outcomes`: a non-valid verdict (count 1), or the valid verdicts of one key
  within one UTC minute (`count`, the newest time and client IP), with the Kafka
  partition and offset it came from. "" where a row has no key and account (`malformed`,
  `unknown`) or no client IP. Ordered per key over time (the misuse detectors: a revoked
  key still presented), with a projection ordered per client IP over time (bursts of bad
  keys from one address). Kept 30 days; deduplicated by the ingest block's token like
  `requests_raw`.
- `key_verified_last`: per key, the newest valid verification and its client IP (from the
  rows above, through `key_verified_last_mv`), which `projections.key_activity` reads.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext

OUTCOME_TTL_DAYS = 30


def statements(ctx: MigrationContext) -> list[str]:
    dedup = f"non_replicated_deduplication_window = {ctx.dedup_window}"
    return [
        f"""
        CREATE TABLE IF NOT EXISTS verification_outcomes (
            event_id UUID,
            occurred_at DateTime64(3, 'UTC'),
            outcome LowCardinality(String),
            account_id LowCardinality(String),
            key_id String,
            client_ip String,
            count UInt32,
            src_partition UInt16,
            src_offset UInt64,
            ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
            PROJECTION by_client_ip (
                SELECT * ORDER BY client_ip, occurred_at
            )
        )
        ENGINE = MergeTree
        PARTITION BY toDate(occurred_at)
        ORDER BY (account_id, key_id, occurred_at)
        TTL toDateTime(occurred_at) + INTERVAL {OUTCOME_TTL_DAYS} DAY
        SETTINGS {dedup}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS key_verified_last (
            account_id LowCardinality(String),
            key_id String,
            last_verified SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
            last_ip AggregateFunction(argMax, String, DateTime64(3, 'UTC'))
        )
        ENGINE = AggregatingMergeTree
        ORDER BY (account_id, key_id)
        SETTINGS {dedup}
        """,
        """
        CREATE MATERIALIZED VIEW IF NOT EXISTS key_verified_last_mv TO key_verified_last AS
        SELECT account_id, key_id, max(occurred_at) AS last_verified,
               argMaxState(client_ip, occurred_at) AS last_ip
        FROM verification_outcomes
        WHERE outcome = 'valid'
        GROUP BY account_id, key_id
        """,
    ]
