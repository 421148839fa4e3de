"""The key registry as the fold of the key events (`schemas.key_ledger`): `keys` rebuilt
with the ledger's key records, and two new tables, `accounts` and `key_audit`.

- `key_audit`: one row per applied event, the account's sequence number `seq` first (the
  audit log, and the history the keys agent folds again when it loads an account: `event`
  is the event as the codec encodes it, which holds no secret, only its hash).
- `keys`: a key's record after its newest event (version: the account seq of that event),
  with the hint, access level, creator, revocation time and reason, and the secret's hash
  (its `sha256:` form only).
- `accounts`: an account's plan and chain position after its newest event (version: seq).

`keys` is dropped and created anew: events of the earlier format cannot be read any more,
so its rows could not be rebuilt. `key_anomalies` stays as it is; refused events are
recorded there under the refusal code. Every table keeps `non_replicated_deduplication_window`
blocks, so an identical block written again (a retried save) is dropped.
"""

from __future__ import annotations

from projections.migration_context import MigrationContext


def statements(ctx: MigrationContext) -> list[str]:
    dedup = f"non_replicated_deduplication_window = {ctx.dedup_window}"
    return [
        "DROP TABLE IF EXISTS keys",
        f"""
        CREATE TABLE keys (
            account_id LowCardinality(String),
            key_id String,
            name String,
            key_type LowCardinality(String),
            access LowCardinality(String),
            status LowCardinality(String),
            secret_hash String,
            hint String,
            created_at DateTime64(3, 'UTC'),
            created_by String,
            updated_at DateTime64(3, 'UTC'),
            revoked_at Nullable(DateTime64(3, 'UTC')),
            revoke_reason LowCardinality(Nullable(String)),
            deleted_at Nullable(DateTime64(3, 'UTC')),
            seq UInt64
        )
        ENGINE = ReplacingMergeTree(seq)
        ORDER BY (account_id, key_id)
        SETTINGS {dedup}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS accounts (
            account_id String,
            plan LowCardinality(String),
            seq UInt64,
            head UUID,
            created_at DateTime64(3, 'UTC'),
            updated_at DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree(seq)
        ORDER BY account_id
        SETTINGS {dedup}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS key_audit (
            account_id LowCardinality(String),
            seq UInt64,
            event_id UUID,
            type LowCardinality(String),
            key_id String,
            actor String,
            source_ip Nullable(String),
            occurred_at DateTime64(3, 'UTC'),
            detail String,
            event String CODEC(ZSTD(3))
        )
        ENGINE = ReplacingMergeTree
        ORDER BY (account_id, seq)
        SETTINGS {dedup}
        """,
    ]
