"""The ingest and key-registry agents on in-memory fakes: transient store failures are
retried, a bug surfaces at once and reaches `on_bug` (which stops a real worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import pytest

from schemas.codec import encode
from schemas.key_ledger import KeyStatus
from schemas.keys import KeyEventModel
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import now_ms
from streams.worker.ingest_agent import IngestAgent
from streams.worker.ingest_plan import IngestLimits, SourceRecord
from streams.worker.keys_agent import KeysAgent
from tests.fakes.streams import MemoryDeadLetters, MemoryIngestStore, MemoryKeyStore
from tests.samples.keys import Chain

TOPIC = "u.requests"


def _value(n: int) -> bytes:
    events = [
        RequestCompleted(
            key_id="key_agents001",
            account_id="acc_agents",
            method="GET",
            route="/v1/a",
            status=200,
            latency_ms=1.0,
            client_ip="192.0.2.8",
        )
        for _ in range(n)
    ]
    return encode(RequestBatch.from_events(events))


class Bugs:
    """An `on_bug` that records instead of ending the process."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException]] = []

    def __call__(self, agent: str, exc: BaseException) -> None:
        self.seen.append((agent, exc))


def _ingest(store: MemoryIngestStore, bugs: Bugs | None = None) -> IngestAgent:
    agent = IngestAgent(
        topic=TOPIC,
        bootstrap_servers="127.0.0.1:1",  # never dialled: the fake has nothing to recover
        store=store,
        dead_letters=MemoryDeadLetters(),
        limits=IngestLimits(1000, 1 << 20, max_future_ms=300_000, max_age_ms=35 * 86_400_000),
        on_bug=bugs or Bugs(),
    )
    return agent


@dataclass
class _Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


@dataclass
class _Event:
    message: _Message


class _Stream:
    """The part of a faust stream the agents use: `take_events` yields given takes."""

    def __init__(self, takes: list[list[_Event]]) -> None:
        self.takes = takes

    async def take_events(self, max_: int, within: float) -> AsyncIterator[list[_Event]]:
        for take in self.takes:
            yield take


async def test_a_transient_store_failure_is_retried_and_the_block_lands_once() -> None:
    store = MemoryIngestStore(failures=[ConnectionResetError("reset"), TimeoutError()])
    agent = _ingest(store)
    try:
        await agent.process([SourceRecord(0, 0, None, _value(3), now_ms())])
        # recovery's first store call failed twice and was retried; then the block landed
        assert agent.stats.events == 3 and agent.stats.blocks == 1
        assert len(store.event_ids(TOPIC)) == 3
        assert store.watermarks(TOPIC) == {0: 0}
    finally:
        agent.close()


async def test_a_type_error_in_the_store_propagates_at_once() -> None:
    store = MemoryIngestStore()
    agent = _ingest(store)
    try:
        # recovered, 1 block
        await agent.process([SourceRecord(0, 0, None, _value(1), now_ms())])
        calls = store.calls
        store.failures = [TypeError("unsupported operand")]
        with pytest.raises(TypeError, match="unsupported operand"):
            await agent.process([SourceRecord(0, 1, None, _value(2), now_ms())])
        assert store.calls == calls + 1  # one try, no retry
        assert agent.stats.events == 1  # the failed block did not count
        assert store.watermarks(TOPIC) == {0: 0}
    finally:
        agent.close()


async def test_a_bug_in_the_ingest_agent_reaches_on_bug() -> None:
    store = MemoryIngestStore()
    bugs = Bugs()
    agent = _ingest(store, bugs)
    bad = [_Event(_Message(0, 0, None, _value(1)))]
    try:
        store.failures = [KeyError("partitions")]  # the first store call, in recovery
        with pytest.raises(KeyError):
            await agent.run(_Stream([bad]))
        assert [(name, type(exc)) for name, exc in bugs.seen] == [("ingest agent", KeyError)]
        assert store.log == []
    finally:
        agent.close()


def _take(events: list[KeyEventModel], start: int = 0) -> list[_Event]:
    return [
        _Event(_Message(0, start + i, e.account_id.encode(), encode(e)))
        for i, e in enumerate(events)
    ]


def _keys_agent(store: MemoryKeyStore, bugs: Bugs | None = None) -> KeysAgent:
    return KeysAgent("u.key-events", store, MemoryDeadLetters(), on_bug=bugs or Bugs())


async def test_the_keys_agent_retries_transient_failures_and_stops_on_a_bug() -> None:
    chain = Chain("acc_agents", Plan.FREE)
    chain.create_key("key_agents001")
    store = MemoryKeyStore(failures=[ConnectionRefusedError(111, "refused")])
    bugs = Bugs()
    agent = _keys_agent(store, bugs)
    try:
        await agent.process_events(_take(chain.events))  # load failed once (retried), then save
        assert set(store.keys) == {("acc_agents", "key_agents001")}
        second = chain.create_key("key_agents002")
        store.failures = [AttributeError("no attribute 'plan'")]
        with pytest.raises(AttributeError):
            await agent.run(_Stream([_take([second], 2)]))
        assert [(name, type(exc)) for name, exc in bugs.seen] == [
            ("key registry agent", AttributeError)
        ]
        assert set(store.keys) == {("acc_agents", "key_agents001")}
    finally:
        agent.close()


async def test_the_keys_agent_loads_an_account_once_and_again_after_forget() -> None:
    chain = Chain("acc_agents", Plan.FREE)
    chain.create_key("key_agents001")
    store = MemoryKeyStore()
    agent = _keys_agent(store)
    try:
        await agent.process_events(_take(chain.events))
        await agent.process_events(_take([chain.rename("key_agents001", "renamed")], 2))
        assert agent.loads == 1  # the cache served the second take
        # Meanwhile another worker owned the partition and folded two more events.
        other = MemoryKeyStore(audit=dict(store.audit))
        elsewhere: list[KeyEventModel] = [
            chain.revoke("key_agents001"),
            chain.create_key("key_agents002"),
        ]
        await _keys_agent(other).process_events(_take(elsewhere, 3))
        store.audit = dict(other.audit)
        agent.forget()  # the partition is assigned back
        await agent.process_events(_take([chain.delete("key_agents001")], 5))
        assert agent.loads == 2 and agent.anomalies == 0
        record = store.keys[("acc_agents", "key_agents001")]
        assert (record.status, record.seq) == (KeyStatus.DELETED, 6)
        assert store.accounts["acc_agents"].seq == 6
    finally:
        agent.close()


async def test_the_keys_agent_dead_letters_garbage_and_records_refusals() -> None:
    chain = Chain("acc_agents", Plan.FREE)
    chain.create_key("key_agents001")
    stale = chain.events[1].model_copy(update={"event_id": uuid4(), "key_id": "key_agents009"})
    store = MemoryKeyStore()
    dead = MemoryDeadLetters()
    agent = KeysAgent("u.key-events", store, dead, on_bug=Bugs())
    try:
        take = _take([*chain.events, stale])
        take.insert(1, _Event(_Message(0, 9, None, b"{not json")))
        await agent.process_events(take)
        assert len(dead.sent) == 1 and dead.sent[0][1] == b"{not json"
        assert (agent.processed, agent.applied, agent.anomalies) == (3, 2, 1)
        assert [(a.event_id, a.anomaly) for a in store.anomalies.values()] == [
            (stale.event_id, "stale_sequence")
        ]
        assert set(store.keys) == {("acc_agents", "key_agents001")}
    finally:
        agent.close()
