"""`verification_outcomes.presented_digest`: for a `malformed` or `unknown` verdict, the
digest of the presented string (`schemas.requests.presented_digest`: 16 hex digits of its
SHA-256; never the string), so the `credential_stuffing` detector can count the distinct
bad strings one client IP presents. "" for every other row, and for the rows written
before this migration (their events carried no digest). The projection `by_client_ip`
(`SELECT *`) takes the new column along for the parts written from now on.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    return [
        "ALTER TABLE verification_outcomes ADD COLUMN IF NOT EXISTS presented_digest String "
        "DEFAULT '' AFTER count",
    ]
