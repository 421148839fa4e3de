"""Cap `ingest_batches.max_occurred_at` of rows written before the cap existed.

The ingest agent now records each block's newest event time capped at its newest Kafka
record timestamp, so one far-future event cannot move freshness ahead of the broker.
Rows written earlier may hold such a time (for example 2099-12-31); they are capped at
the row's own `created_at` (when the worker wrote it), so freshness reads stop being
frozen by them at once instead of when the rows expire.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        """
        ALTER TABLE ingest_batches
        UPDATE max_occurred_at = created_at
        WHERE max_occurred_at > created_at
        SETTINGS mutations_sync = 1
        """,
    ]
