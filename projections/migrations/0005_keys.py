"""keys: the key registry (ReplacingMergeTree by version = source offset) and anomalies."""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        """
        CREATE TABLE IF NOT EXISTS keys (
            account_id LowCardinality(String),
            key_id String,
            name String,
            key_type LowCardinality(String),
            access LowCardinality(String),
            status LowCardinality(String),
            plan LowCardinality(String),
            created_at DateTime64(3, 'UTC'),
            revoked_at Nullable(DateTime64(3, 'UTC')),
            deleted_at Nullable(DateTime64(3, 'UTC')),
            updated_at DateTime64(3, 'UTC'),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version)
        ORDER BY (account_id, key_id)
        """,
        """
        CREATE TABLE IF NOT EXISTS key_anomalies (
            account_id LowCardinality(String),
            key_id String,
            event_id UUID,
            event_type LowCardinality(String),
            anomaly LowCardinality(String),
            detail String,
            occurred_at DateTime64(3, 'UTC'),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version)
        ORDER BY (account_id, key_id, event_id)
        """,
    ]
