"""`bench.misuse`'s data: a fresh migrated chDB database, the key registry and the
generated traffic written through the real insert path.

Keys go into the registry as the key projection writes them (`ClickHouseKeyStore.save`
with one `KeyRecord` per key). Request and outcome rows go through
`ClickHouseIngestStore`: `encode` (the Native encoding the ingest agent prepares on its
decode thread) on a generator thread, then `write` (the write-ahead row and the
`requests_raw` insert, which feeds every materialized view: `usage_rollup`,
`key_ip_day`, `key_status_rollup`, ...) and `write_outcomes` on the caller's thread, one
insert per block, each block its own deduplication token, as the agent does.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from clickhouse_connect.driver.client import Client

from bench.misuse_traffic import Block, KeyProfile, Traffic, blocks
from infra.clickhouse import make_client, migration_context
from infra.settings import load_settings
from projections.migrate import migrate
from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyType, RevokeReason
from streams.worker.ports import InsertBlock, KeyChanges, OffsetRange

TOPIC = "keypulse.requests"


def migrated_client(data_dir: Path) -> Client:
    """A client on a fresh, fully migrated chDB database under `data_dir`."""
    settings = load_settings(_env_file=None, data_dir=data_dir)
    client = make_client(settings)
    migrate(client, migration_context(settings))
    return client


def key_record(key: KeyProfile, created: datetime, seq: int) -> KeyRecord:
    revoked = key.revoked_at
    return KeyRecord(
        account_id=key.account_id,
        key_id=key.key_id,
        name=key.name,
        key_type=KeyType.LIVE,
        access=KeyAccess.FULL,
        status=KeyStatus.REVOKED if revoked else KeyStatus.ACTIVE,
        secret_hash="sha256:" + f"{seq:064x}",
        hint="pk_live_" + key.key_id[-4:],
        created_at=created,
        created_by="bench.misuse",
        updated_at=revoked or created,
        seq=seq,
        revoked_at=revoked,
        revoke_reason=RevokeReason.COMPROMISED if revoked else None,
    )


def register_keys(client: Client, keys: list[KeyProfile], created: datetime) -> None:
    """One registry row per key (created a day before the traffic starts)."""
    records = [key_record(k, created - timedelta(days=1), i + 2) for i, k in enumerate(keys)]
    ClickHouseKeyStore(client).save(KeyChanges(keys=records))


@dataclass
class BackfillStats:
    events: int = 0
    outcomes: int = 0
    blocks: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _insert_block(b: Block) -> InsertBlock:
    return InsertBlock(
        topic=TOPIC,
        ranges=[OffsetRange(0, b.offset, b.offset)],
        columns=b.requests,
        count=b.count,
        max_occurred_at_ms=b.max_occurred_at_ms,
    )


def _encoded(
    store: ClickHouseIngestStore, source: Iterator[Block]
) -> Iterator[tuple[InsertBlock, Block]]:
    """Blocks generated and encoded on a thread of their own (bounded queue of 2)."""
    q: queue.Queue[tuple[InsertBlock, Block] | BaseException | None] = queue.Queue(2)

    def run() -> None:
        try:
            for b in source:
                block = _insert_block(b)
                store.encode(block)
                q.put((block, b))
            q.put(None)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, name="misuse-generate", daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def backfill(client: Client, traffic: Traffic, max_events: int = 50_000) -> BackfillStats:
    """Write every generated block through `ClickHouseIngestStore`; progress on stderr."""
    store = ClickHouseIngestStore(client)
    stats = BackfillStats()
    began = time.perf_counter()
    for block, raw in _encoded(store, blocks(traffic, max_events)):
        store.write(block)
        n_out = len(raw.outcomes["event_id"])
        store.write_outcomes(block.token, raw.outcomes, n_out)
        stats.events += block.count
        stats.outcomes += n_out
        stats.blocks += 1
        if stats.blocks % 25 == 0:
            elapsed = time.perf_counter() - began
            print(
                f"backfill: {stats.events:,} events in {stats.blocks} blocks, {elapsed:.0f} s",
                file=sys.stderr,
            )
    stats.seconds = time.perf_counter() - began
    return stats
