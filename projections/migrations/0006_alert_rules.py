"""alert_rules: the rules projection (ReplacingMergeTree by version = source offset).

One row per rule event; the highest version per rule_id is the current rule, `deleted`
marks a deletion. `rule` holds the whole rule as JSON; the other columns serve listings.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        """
        CREATE TABLE IF NOT EXISTS alert_rules (
            rule_id String,
            account_id LowCardinality(String),
            name String,
            kind LowCardinality(String),
            window_s UInt32,
            key_id String,
            enabled Bool,
            deleted Bool,
            rule String,
            updated_at DateTime64(3, 'UTC'),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version)
        ORDER BY rule_id
        """,
    ]
