"""The worker's ports (`IngestStore`, `KeyStore`): one suite, run against the in-memory
fakes (`tests/fakes/streams.py`) and the ClickHouse adapters (`projections.writers`) on
chDB, so the fakes the unit tests use cannot drift from the adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from clickhouse_connect.driver.client import Client

from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.codec import encode
from schemas.key_ledger import KeyRecord, KeyStatus
from schemas.keys import KeyAccess, KeyEventModel, KeyType, RevokeReason
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest
from streams.worker.keys_agent import (
    AccountState,
    account_record,
    fold_key_events,
    key_id_of,
    restore,
)
from streams.worker.ports import (
    AccountHistory,
    AccountRecord,
    IngestStore,
    InsertBlock,
    KeyChanges,
    KeyStore,
    OffsetRange,
)
from streams.worker.recovery_plan import unfinished
from tests.fakes.streams import MemoryIngestStore, MemoryKeyStore
from tests.samples.keys import Chain

TOPIC = "c.requests"
OTHER = "c.other"
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
"""Recent: `requests_raw` drops rows older than its TTL."""
BIG = 1 << 20
LIMITS = IngestLimits(BIG, BIG, max_future_ms=300_000, max_age_ms=35 * 86_400_000)
RECORD_MS = to_epoch_ms(T0) + 3_600_000
"""The Kafka timestamp of the test records: an hour after their events."""

# --------------------------------------------------------------------------- fixtures


@dataclass
class IngestSubject:
    store: IngestStore
    reopen: Callable[[], IngestStore]  # the store after a restart, on the same data
    event_ids: Callable[[], list[str]]  # every stored event id (a test read)


@dataclass
class KeySubject:
    store: KeyStore
    rows: Callable[[], KeyRows]  # what the tables hold now (a test read)


@dataclass(frozen=True)
class KeyRows:
    """Every projection row, newest version of each, in a comparable form."""

    audit: list[tuple[str, int, str, str, str]]  # account, seq, type, key_id, detail
    keys: list[KeyRecord]
    accounts: list[AccountRecord]
    anomalies: list[tuple[str, str, str, int]]  # account, key_id, anomaly, version


def _clickhouse_event_ids(client: Client) -> list[str]:
    rows = client.query("SELECT toString(event_id) FROM requests_raw").result_rows
    return [r[0] for r in rows]


@pytest.fixture(params=["memory", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def ingest(request: pytest.FixtureRequest) -> Iterator[IngestSubject]:
    if request.param == "memory":
        memory = MemoryIngestStore()
        yield IngestSubject(memory, memory.reopened, lambda: memory.event_ids(TOPIC))
        return
    client: Client = request.getfixturevalue("migrated_client")
    yield IngestSubject(
        ClickHouseIngestStore(client),
        lambda: ClickHouseIngestStore(client),
        lambda: _clickhouse_event_ids(client),
    )


def _memory_rows(memory: MemoryKeyStore) -> KeyRows:
    return KeyRows(
        audit=sorted(
            (a, seq, e.event.type, key_id_of(e.event), e.detail)
            for (a, seq), e in memory.audit.items()
        ),
        keys=sorted(memory.keys.values(), key=lambda k: (k.account_id, k.key_id)),
        accounts=sorted(memory.accounts.values(), key=lambda a: a.account_id),
        anomalies=sorted(
            (a.account_id, a.key_id, a.anomaly, a.version) for a in memory.anomalies.values()
        ),
    )


def _clickhouse_rows(client: Client) -> KeyRows:
    audit = client.query(
        "SELECT account_id, seq, type, key_id, detail FROM key_audit FINAL ORDER BY 1, 2"
    ).result_rows
    keys = client.query(
        "SELECT account_id, key_id, name, key_type, access, status, secret_hash, hint, "
        "created_at, created_by, updated_at, seq, revoked_at, revoke_reason, deleted_at "
        "FROM keys FINAL ORDER BY account_id, key_id",
        tz_mode="aware",
    ).result_rows
    accounts = client.query(
        "SELECT account_id, plan, seq, head, created_at, updated_at FROM accounts FINAL "
        "ORDER BY account_id",
        tz_mode="aware",
    ).result_rows
    anomalies = client.query(
        "SELECT account_id, key_id, anomaly, version FROM key_anomalies FINAL ORDER BY 1, 2, 3"
    ).result_rows
    return KeyRows(
        audit=[(str(a), int(s), str(t), str(k), str(d)) for a, s, t, k, d in audit],
        keys=[_record(row) for row in keys],
        accounts=[AccountRecord(*row) for row in accounts],
        anomalies=[(str(a), str(k), str(n), int(v)) for a, k, n, v in anomalies],
    )


def _record(row: Sequence[Any]) -> KeyRecord:
    account, key, name, key_type, access, status, secret_hash, hint, *rest = row
    created, by, updated, seq, revoked_at, reason, deleted_at = rest
    return KeyRecord(
        account_id=account,
        key_id=key,
        name=name,
        key_type=KeyType(key_type),
        access=KeyAccess(access),
        status=KeyStatus(status),
        secret_hash=secret_hash,
        hint=hint,
        created_at=created,
        created_by=by,
        updated_at=updated,
        seq=seq,
        revoked_at=revoked_at,
        revoke_reason=None if reason is None else RevokeReason(reason),
        deleted_at=deleted_at,
    )


@pytest.fixture(params=["memory", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def keys(request: pytest.FixtureRequest) -> Iterator[KeySubject]:
    if request.param == "memory":
        memory = MemoryKeyStore()
        yield KeySubject(memory, lambda: _memory_rows(memory))
        return
    client: Client = request.getfixturevalue("migrated_client")
    yield KeySubject(ClickHouseKeyStore(client), lambda: _clickhouse_rows(client))


# --------------------------------------------------------------------------- ingest


def _events(n: int) -> list[RequestCompleted]:
    return [
        RequestCompleted(
            occurred_at=T0 + timedelta(seconds=i),
            key_id="key_contract1",
            account_id="acc_contract",
            method="GET",
            route="/v1/contract",
            status=200,
            latency_ms=1.5,
            client_ip="192.0.2.3",
        )
        for i in range(n)
    ]


def _block(topic: str, *spans: tuple[int, int, int]) -> InsertBlock:
    """One block with `events` events per offset of each (partition, start, end)."""
    records = [
        SourceRecord(p, o, None, encode(RequestBatch.from_events(_events(2))), RECORD_MS)
        for p, start, end in spans
        for o in range(start, end + 1)
    ]
    (block,) = plan_ingest(topic, records, {}, LIMITS).blocks
    return block


def _ids(block: InsertBlock) -> list[str]:
    return [str(i) for i in block.columns["event_id"]]


def _suspects(store: IngestStore, topic: str = TOPIC) -> list[list[OffsetRange]]:
    """The ranges of the blocks recovery would re-apply everywhere (`unfinished`)."""
    rows = store.recovery_log(topic)
    tokens = unfinished(rows)
    return [list(next(r.ranges for r in rows if r.token == t)) for t in tokens]


def test_a_fresh_store_has_no_watermarks_and_nothing_to_recover(ingest: IngestSubject) -> None:
    assert ingest.store.watermarks(TOPIC) == {}
    assert ingest.store.recovery_log(TOPIC) == []
    assert _suspects(ingest.store) == []
    assert ingest.event_ids() == []


def test_writes_store_rows_and_move_watermarks(ingest: IngestSubject) -> None:
    first = _block(TOPIC, (0, 0, 3), (1, 0, 1))
    second = _block(TOPIC, (0, 4, 6))
    ingest.store.write(first)
    ingest.store.write(second)
    assert ingest.store.watermarks(TOPIC) == {0: 6, 1: 1}
    assert _suspects(ingest.store) == [[OffsetRange(0, 4, 6)]]
    assert sorted(ingest.event_ids()) == sorted(_ids(first) + _ids(second))


def test_topics_are_apart(ingest: IngestSubject) -> None:
    ingest.store.write(_block(OTHER, (0, 0, 9)))
    assert ingest.store.watermarks(TOPIC) == {}
    assert _suspects(ingest.store) == []
    ingest.store.write(_block(TOPIC, (2, 5, 5)))
    assert ingest.store.watermarks(OTHER) == {0: 9}
    assert _suspects(ingest.store, OTHER) == [[OffsetRange(0, 0, 9)]]
    assert _suspects(ingest.store) == [[OffsetRange(2, 5, 5)]]


def test_rewriting_a_block_under_its_token_stores_its_rows_once(ingest: IngestSubject) -> None:
    block = _block(TOPIC, (0, 10, 12))
    ingest.store.write(block)
    ingest.store.write(block)  # recovery re-applies a recorded insert
    assert sorted(ingest.event_ids()) == sorted(_ids(block))
    assert _suspects(ingest.store) == [[OffsetRange(0, 10, 12)]]
    assert ingest.store.watermarks(TOPIC) == {0: 12}


def test_a_block_without_events_moves_the_watermark_only(ingest: IngestSubject) -> None:
    bad = SourceRecord(3, 8, None, b"{", RECORD_MS)
    rejected_only = plan_ingest(TOPIC, [bad], {}, LIMITS).blocks[0]
    assert rejected_only.count == 0
    ingest.store.write(rejected_only)
    assert ingest.store.watermarks(TOPIC) == {3: 8}
    assert _suspects(ingest.store) == [[OffsetRange(3, 8, 8)]]
    assert ingest.event_ids() == []


def test_each_writer_newest_block_is_a_suspect_until_a_later_row(ingest: IngestSubject) -> None:
    """Two writers (workers, or one before and after a restart) share the log; each
    counts its own seq. Only each one's newest block may be half-landed; a marker row
    (a block without ranges) after a re-applied one says it landed."""
    ingest.store.write(_block(TOPIC, (0, 50, 60)))
    ingest.store.write(_block(TOPIC, (1, 0, 2)))  # lower offsets, later write
    other = ingest.reopen()
    other.write(_block(TOPIC, (2, 0, 4)))
    assert sorted(_suspects(other), key=str) == sorted(
        [[OffsetRange(1, 0, 2)], [OffsetRange(2, 0, 4)]], key=str
    )
    assert {r.writer for r in other.recovery_log(TOPIC)} == {
        r.writer for r in ingest.store.recovery_log(TOPIC)
    }
    assert len({r.writer for r in other.recovery_log(TOPIC)}) == 2
    other.write(_block(TOPIC, (1, 0, 2)))  # the recovery re-applies the other's block
    other.write(InsertBlock(TOPIC, [], {}, 0, 0))  # and notes that it landed
    assert _suspects(other) == []
    assert other.watermarks(TOPIC) == {0: 60, 1: 2, 2: 4}
    newest, reapplied = _block(TOPIC, (2, 0, 4)).token, _block(TOPIC, (1, 0, 2)).token
    later = other.later_writes([newest, reapplied])
    # rows since each token's first row, itself included (ClickHouse counts rows of the
    # same millisecond too: never fewer)
    assert 3 <= later[newest] <= 5
    assert 4 <= later[reapplied] <= 5


# --------------------------------------------------------------------------- keys


def _chain() -> Chain:
    chain = Chain("acc_contract", Plan.FREE, at=T0)
    chain.create_key("key_contract1", "first", at=T0 + timedelta(seconds=1, milliseconds=250))
    chain.create_key("key_contract2", "admin", KeyType.TEST, KeyAccess.ADMIN)
    chain.rename("key_contract1", "renamed")
    chain.revoke("key_contract1", RevokeReason.COMPROMISED)
    return chain


def _fold(states: dict[str, AccountState], events: list[KeyEventModel]) -> KeyChanges:
    for event in events:
        states.setdefault(event.account_id, AccountState(event.account_id))
    return fold_key_events(states, events)


def _stale(chain: Chain) -> KeyEventModel:
    """Another writer's event with the seq and prev of the chain's second event."""
    return chain.events[1].model_copy(update={"event_id": uuid4(), "key_id": "key_contract9"})


def test_unknown_accounts_load_as_empty_histories(keys: KeySubject) -> None:
    assert keys.store.load([]) == {}
    assert keys.store.load(["acc_unknown"]) == {"acc_unknown": AccountHistory("acc_unknown")}


def test_saved_changes_load_back_as_the_same_history(keys: KeySubject) -> None:
    chain = _chain()
    states: dict[str, AccountState] = {}
    stale = _stale(chain)
    keys.store.save(_fold(states, [*chain.events[:3], stale]))
    keys.store.save(_fold(states, chain.events[3:]))
    other = Chain("acc_contract2", Plan.PRO, at=T0)
    keys.store.save(_fold(states, other.events))
    loaded = keys.store.load(["acc_contract", "acc_contract", "acc_contract2"])
    assert loaded == {
        "acc_contract": AccountHistory("acc_contract", chain.events, frozenset({stale.event_id})),
        "acc_contract2": AccountHistory("acc_contract2", other.events),
    }
    assert restore(loaded["acc_contract"]).ledger == states["acc_contract"].ledger


def test_the_rows_are_the_folded_state(keys: KeySubject) -> None:
    chain = _chain()
    states: dict[str, AccountState] = {}
    keys.store.save(_fold(states, [*chain.events, _stale(chain)]))
    ledger = states["acc_contract"].ledger
    assert ledger is not None
    rows = keys.rows()
    assert rows.keys == [ledger.keys["key_contract1"], ledger.keys["key_contract2"]]
    assert rows.accounts == [account_record(ledger)]
    assert [(a, s, t, k) for a, s, t, k, _ in rows.audit] == [
        ("acc_contract", e.seq, e.type, key_id_of(e)) for e in chain.events
    ]
    assert rows.audit[-1][4] == "reason: compromised"
    assert rows.anomalies == [("acc_contract", "key_contract9", "stale_sequence", 2)]


def test_the_newest_seq_wins_and_saving_again_changes_nothing(keys: KeySubject) -> None:
    chain = _chain()
    states: dict[str, AccountState] = {}
    first = _fold(states, chain.events[:2])
    second = _fold(states, chain.events[2:])
    keys.store.save(first)
    keys.store.save(second)
    settled = keys.rows()
    keys.store.save(first)  # late: an older take written again
    keys.store.save(second)
    assert keys.rows() == settled
    assert [k.seq for k in settled.keys] == [5, 3]
    assert settled.accounts[0].seq == 5


def test_a_save_is_completed_by_saving_the_take_again(keys: KeySubject) -> None:
    """A save that stopped after the audit rows (the keys agent writes the take again)."""
    chain = _chain()
    states: dict[str, AccountState] = {}
    changes = _fold(states, chain.events)
    keys.store.save(KeyChanges(anomalies=changes.anomalies, audit=changes.audit))
    restored = restore(keys.store.load(["acc_contract"])["acc_contract"])
    again = fold_key_events({"acc_contract": restored}, chain.events)
    keys.store.save(again)
    rows = keys.rows()
    ledger = states["acc_contract"].ledger
    assert ledger is not None
    assert rows.keys == sorted(ledger.keys.values(), key=lambda k: k.key_id)
    assert rows.accounts == [account_record(ledger)]
