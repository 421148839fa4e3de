"""key_anomalies.events: how many events a row stands for.

A lifecycle anomaly is one event (the default, 1); an unattributed-request row counts the
request events of one key and account it found (`projections.attribution`).
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    del ctx
    return [
        "ALTER TABLE key_anomalies ADD COLUMN IF NOT EXISTS events UInt64 DEFAULT 1 AFTER detail"
    ]
