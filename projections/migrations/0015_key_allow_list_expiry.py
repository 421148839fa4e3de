"""A key's allow-list, expiry and roll links in `keys` (the fields of
`schemas.key_ledger.KeyRecord`): `allowed_cidrs` (normalised CIDR strings, empty:
anywhere), `expires_at` (null: never), `replaces` and `replaced_by` (the key ids a roll
links). Whether a key is expired is not stored: a read compares `expires_at` with its
time. Rows written before this migration read as an empty allow-list without expiry or
links, which is what their events said.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    return [
        "ALTER TABLE keys ADD COLUMN IF NOT EXISTS allowed_cidrs Array(String) AFTER deleted_at",
        "ALTER TABLE keys ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC')) "
        "AFTER allowed_cidrs",
        "ALTER TABLE keys ADD COLUMN IF NOT EXISTS replaces Nullable(String) AFTER expires_at",
        "ALTER TABLE keys ADD COLUMN IF NOT EXISTS replaced_by Nullable(String) AFTER replaces",
    ]
