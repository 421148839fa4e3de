"""ingest_batches: the write-ahead record of every ingest insert (offset ranges and token).

The ingest agent writes one row here before each data insert. After a crash, the newest
row is re-inserted with the same deduplication token, which completes a half-landed
insert and is a no-op for a complete one; offsets up to its end are then skipped. A `checkpoint`
row (written after a replay) records offsets known complete: nothing to re-apply.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        """
        CREATE TABLE IF NOT EXISTS ingest_batches (
            topic LowCardinality(String),
            seq UInt64,
            token String,
            partitions Array(UInt16),
            start_offsets Array(UInt64),
            end_offsets Array(UInt64),
            events UInt32,
            max_occurred_at DateTime64(3, 'UTC'),
            checkpoint Bool DEFAULT false,
            created_at DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = MergeTree
        ORDER BY (topic, seq)
        TTL toDateTime(created_at) + INTERVAL 30 DAY
        """,
    ]
