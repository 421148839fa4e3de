"""The ingest and key-registry agents on in-memory fakes: transient store failures are
retried, a bug surfaces at once and reaches `on_bug` (which stops a real worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from schemas.codec import encode
from schemas.keys import KeyCreated, KeyType
from schemas.plans import Plan
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import now_ms
from streams.worker.ingest_agent import IngestAgent
from streams.worker.ingest_plan import IngestLimits, SourceRecord
from streams.worker.keys_agent import KeysAgent
from tests.fakes.streams import MemoryDeadLetters, MemoryIngestStore, MemoryKeyStore

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


def _created(key_id: str) -> bytes:
    return encode(
        KeyCreated(
            key_id=key_id,
            account_id="acc_agents",
            name="k",
            key_type=KeyType.TEST,
            secret_hash="sha256:" + "ef" * 32,
            plan=Plan.FREE,
        )
    )


async def test_the_keys_agent_retries_transient_failures_and_stops_on_a_bug() -> None:
    store = MemoryKeyStore(failures=[ConnectionRefusedError(111, "refused")])
    bugs = Bugs()
    agent = KeysAgent("u.key-events", store, MemoryDeadLetters(), on_bug=bugs)
    first = [_Event(_Message(0, 0, None, _created("key_agents001")))]
    second = [_Event(_Message(0, 1, None, _created("key_agents002")))]
    try:
        await agent.process_events(first)  # load failed once (retried), then save
        assert set(store.keys) == {"key_agents001"}
        store.failures = [AttributeError("no attribute 'plan'")]
        with pytest.raises(AttributeError):
            await agent.run(_Stream([second]))
        assert [(name, type(exc)) for name, exc in bugs.seen] == [
            ("key registry agent", AttributeError)
        ]
        assert set(store.keys) == {"key_agents001"}
    finally:
        agent.close()
