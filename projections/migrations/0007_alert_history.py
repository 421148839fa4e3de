"""alert_history (every transition, append-only) and alert_instances (latest state).

`alert_history` rows carry the instance after the transition as JSON; `alert_instances`
keeps the newest state per fingerprint (ReplacingMergeTree by version) so the evaluator
restores without scanning the history. Both deduplicate a retried insert by its token.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    return [
        f"""
        CREATE TABLE IF NOT EXISTS alert_history (
            at DateTime64(3, 'UTC'),
            seq UInt64,
            fingerprint String,
            rule_id String,
            account_id LowCardinality(String),
            key_id String,
            from_state LowCardinality(String),
            to_state LowCardinality(String),
            reason LowCardinality(String),
            value Nullable(Float64),
            threshold Float64,
            notified LowCardinality(String),
            episode UInt32,
            detail String,
            instance String
        )
        ENGINE = MergeTree
        PARTITION BY toYYYYMM(at)
        ORDER BY (rule_id, fingerprint, at, seq)
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS alert_instances (
            fingerprint String,
            rule_id String,
            account_id LowCardinality(String),
            key_id String,
            state LowCardinality(String),
            instance String,
            updated_at DateTime64(3, 'UTC'),
            version UInt64
        )
        ENGINE = ReplacingMergeTree(version)
        ORDER BY fingerprint
        SETTINGS non_replicated_deduplication_window = {ctx.dedup_window}
        """,
    ]
