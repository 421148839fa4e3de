"""Values a migration may depend on (kept small and explicit)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MigrationContext:
    raw_ttl_days: int = 35
    minute_ttl_days: int = 32  # the 30d window reads its head partial hour from minutes
    dedup_window: int = 10_000
    """Blocks remembered for insert deduplication, on every table an insert reaches."""
    existing_tables: frozenset[str] = frozenset()
    """Tables of the database just before the migration runs (filled in by the runner),
    for migrations that move data and must know where a crashed earlier attempt stopped."""
