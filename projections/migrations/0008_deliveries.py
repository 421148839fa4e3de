"""deliveries (one row per delivery event: accepted, then each attempt) and disabled_endpoints.

A delivery's status is that of its newest row (highest `seq`): pending, delivered,
retrying (with next_attempt_at), dead or disabled. Rows keep the notification as JSON so
open deliveries resume after a restart and dead letters can be replayed. This log is the
one table that cannot be rebuilt from Kafka.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        """
        CREATE TABLE IF NOT EXISTS deliveries (
            delivery_id String,
            seq UInt64,
            idempotency_key String,
            fingerprint String,
            account_id LowCardinality(String),
            rule_id String,
            key_id String,
            kind LowCardinality(String),
            channel_id String,
            channel_type LowCardinality(String),
            channel_index UInt8,
            attempt UInt32,
            round_offset UInt32,
            at DateTime64(3, 'UTC'),
            status LowCardinality(String),
            outcome LowCardinality(String),
            detail String,
            next_attempt_at Nullable(DateTime64(3, 'UTC')),
            first_attempt_at Nullable(DateTime64(3, 'UTC')),
            replay Bool,
            notification String
        )
        ENGINE = MergeTree
        PARTITION BY toYYYYMM(at)
        ORDER BY (delivery_id, seq)
        """,
        """
        CREATE TABLE IF NOT EXISTS disabled_endpoints (
            channel_id String,
            channel_type LowCardinality(String),
            disabled Bool,
            reason String,
            at DateTime64(3, 'UTC'),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version)
        ORDER BY channel_id
        """,
    ]
