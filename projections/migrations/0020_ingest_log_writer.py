"""`ingest_batches.writer`: which store instance (one worker process, from its start to its
exit) wrote the row. Each writer writes its rows one at a time and numbers them with its
own growing `seq`, so a row followed by a later row of the same writer under another token
is an insert that landed completely; recovery (`streams.worker.recovery_plan`) re-applies
only the others. "" for the rows written before this migration: one writer then.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        "ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS writer String DEFAULT '' AFTER seq",
    ]
