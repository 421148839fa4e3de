"""The worker's ports (`IngestStore`, `KeyStore`): one suite, run against the in-memory
fakes (`tests/fakes/streams.py`) and the ClickHouse adapters (`projections.writers`) on
chDB, so the fakes the unit tests use cannot drift from the adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from clickhouse_connect.driver.client import Client

from projections.writers import ClickHouseIngestStore, ClickHouseKeyStore
from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import to_epoch_ms
from streams.worker.ingest_plan import IngestLimits, SourceRecord, plan_ingest
from streams.worker.ports import (
    Anomaly,
    AnomalyRecord,
    IngestStore,
    InsertBlock,
    KeyState,
    KeyStatus,
    KeyStore,
    OffsetRange,
)
from tests.fakes.streams import MemoryIngestStore, MemoryKeyStore
from tests.samples.streams import key_state

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
    anomalies: Callable[[], list[tuple[str, str, int]]]  # (key_id, anomaly, version)


def _clickhouse_event_ids(client: Client) -> list[str]:
    rows = client.query("SELECT toString(event_id) FROM requests_raw").result_rows
    return [r[0] for r in rows]


@pytest.fixture(params=["memory", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def ingest(request: pytest.FixtureRequest) -> Iterator[IngestSubject]:
    if request.param == "memory":
        memory = MemoryIngestStore()
        yield IngestSubject(memory, lambda: memory, lambda: memory.event_ids(TOPIC))
        return
    client: Client = request.getfixturevalue("migrated_client")
    yield IngestSubject(
        ClickHouseIngestStore(client),
        lambda: ClickHouseIngestStore(client),
        lambda: _clickhouse_event_ids(client),
    )


@pytest.fixture(params=["memory", pytest.param("clickhouse", marks=pytest.mark.clickhouse)])
def keys(request: pytest.FixtureRequest) -> Iterator[KeySubject]:
    if request.param == "memory":
        memory = MemoryKeyStore()
        yield KeySubject(
            memory, lambda: sorted((a.key_id, a.anomaly.value, a.version) for a in memory.anomalies)
        )
        return
    client: Client = request.getfixturevalue("migrated_client")

    def anomalies() -> list[tuple[str, str, int]]:
        rows = client.query(
            "SELECT key_id, anomaly, version FROM key_anomalies FINAL ORDER BY 1, 2, 3"
        ).result_rows
        return [(str(k), str(a), int(v)) for k, a, v in rows]

    yield KeySubject(ClickHouseKeyStore(client), anomalies)


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


def test_a_fresh_store_has_no_watermarks_and_nothing_to_recover(ingest: IngestSubject) -> None:
    assert ingest.store.watermarks(TOPIC) == {}
    assert ingest.store.last_ranges(TOPIC) == []
    assert ingest.event_ids() == []


def test_writes_store_rows_and_move_watermarks(ingest: IngestSubject) -> None:
    first = _block(TOPIC, (0, 0, 3), (1, 0, 1))
    second = _block(TOPIC, (0, 4, 6))
    ingest.store.write(first)
    ingest.store.write(second)
    assert ingest.store.watermarks(TOPIC) == {0: 6, 1: 1}
    assert ingest.store.last_ranges(TOPIC) == [OffsetRange(0, 4, 6)]
    assert sorted(ingest.event_ids()) == sorted(_ids(first) + _ids(second))


def test_topics_are_apart(ingest: IngestSubject) -> None:
    ingest.store.write(_block(OTHER, (0, 0, 9)))
    assert ingest.store.watermarks(TOPIC) == {}
    assert ingest.store.last_ranges(TOPIC) == []
    ingest.store.write(_block(TOPIC, (2, 5, 5)))
    assert ingest.store.watermarks(OTHER) == {0: 9}
    assert ingest.store.last_ranges(OTHER) == [OffsetRange(0, 0, 9)]
    assert ingest.store.last_ranges(TOPIC) == [OffsetRange(2, 5, 5)]


def test_rewriting_a_block_under_its_token_stores_its_rows_once(ingest: IngestSubject) -> None:
    block = _block(TOPIC, (0, 10, 12))
    ingest.store.write(block)
    ingest.store.write(block)  # recovery re-applies the newest insert
    assert sorted(ingest.event_ids()) == sorted(_ids(block))
    assert ingest.store.last_ranges(TOPIC) == [OffsetRange(0, 10, 12)]
    assert ingest.store.watermarks(TOPIC) == {0: 12}


def test_a_block_without_events_moves_the_watermark_only(ingest: IngestSubject) -> None:
    bad = SourceRecord(3, 8, None, b"{", RECORD_MS)
    rejected_only = plan_ingest(TOPIC, [bad], {}, LIMITS).blocks[0]
    assert rejected_only.count == 0
    ingest.store.write(rejected_only)
    assert ingest.store.watermarks(TOPIC) == {3: 8}
    assert ingest.store.last_ranges(TOPIC) == [OffsetRange(3, 8, 8)]
    assert ingest.event_ids() == []


def test_the_newest_write_is_the_last_range_also_after_a_restart(ingest: IngestSubject) -> None:
    ingest.store.write(_block(TOPIC, (0, 50, 60)))
    ingest.store.write(_block(TOPIC, (1, 0, 2)))  # lower offsets, later write
    assert ingest.store.last_ranges(TOPIC) == [OffsetRange(1, 0, 2)]
    restarted = ingest.reopen()
    assert restarted.last_ranges(TOPIC) == [OffsetRange(1, 0, 2)]
    restarted.write(_block(TOPIC, (0, 61, 61)))
    assert restarted.last_ranges(TOPIC) == [OffsetRange(0, 61, 61)]
    assert restarted.watermarks(TOPIC) == {0: 61, 1: 2}


# --------------------------------------------------------------------------- keys


def _key(key_id: str, version: int, **changes: object) -> KeyState:
    base: dict[str, object] = {"version": version, "created_at": T0, "updated_at": T0}
    return key_state(key_id, "acc_contract", **(base | changes))


def _anomaly(key_id: str, version: int) -> AnomalyRecord:
    return AnomalyRecord(
        account_id="acc_contract",
        key_id=key_id,
        event_id=uuid4(),
        event_type="key.deleted",
        anomaly=Anomaly.DELETE_WITHOUT_REVOKE,
        detail="key is still active",
        occurred_at=T0,
        version=version,
    )


def test_unknown_keys_load_as_nothing(keys: KeySubject) -> None:
    assert keys.store.load([]) == {}
    assert keys.store.load(["key_unknown01"]) == {}


def test_saved_states_load_back_equal(keys: KeySubject) -> None:
    active = _key("key_contract1", 3)
    revoked = _key(
        "key_contract2",
        7,
        status=KeyStatus.REVOKED,
        revoked_at=T0 + timedelta(minutes=5, milliseconds=250),
        updated_at=T0 + timedelta(minutes=5, milliseconds=250),
    )
    keys.store.save([active, revoked], [])
    loaded = keys.store.load(["key_contract1", "key_contract2", "key_contract1", "key_nope0001"])
    assert loaded == {"key_contract1": active, "key_contract2": revoked}
    assert keys.store.load(["key_contract2"]) == {"key_contract2": revoked}


def test_the_highest_version_wins(keys: KeySubject) -> None:
    keys.store.save([_key("key_contract1", 5, name="five")], [])
    keys.store.save([_key("key_contract1", 9, name="nine")], [])
    keys.store.save([_key("key_contract1", 7, name="seven")], [])  # late, older position
    assert keys.store.load(["key_contract1"])["key_contract1"].name == "nine"


def test_anomalies_are_kept_and_change_no_state(keys: KeySubject) -> None:
    state = _key("key_contract1", 2)
    keys.store.save([state], [_anomaly("key_contract1", 4)])
    keys.store.save([], [_anomaly("key_contract2", 6)])
    assert keys.store.load(["key_contract1", "key_contract2"]) == {"key_contract1": state}
    assert keys.anomalies() == [
        ("key_contract1", "delete_without_revoke", 4),
        ("key_contract2", "delete_without_revoke", 6),
    ]
