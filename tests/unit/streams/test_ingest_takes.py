"""The ingest agent's takes on a fake faust stream with manual acks: blocks are written
while their take is still open, the next take is decoded while the last blocks are
written, a take is acknowledged only after all its blocks landed (in order), records
already waiting join a take without waiting, and a bug acknowledges nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from schemas.codec import encode
from schemas.requests import RequestBatch, RequestCompleted
from schemas.utc import now_ms
from streams.worker.ingest_agent import IngestAgent
from streams.worker.ingest_plan import IngestLimits
from streams.worker.ports import InsertBlock
from tests.eventually import eventually
from tests.fakes.streams import MemoryDeadLetters, MemoryIngestStore

TOPIC = "u.requests"
EVENTS_PER_RECORD = 2


def _value() -> bytes:
    events = [
        RequestCompleted(
            key_id="key_takes0001",
            account_id="acc_takes",
            method="GET",
            route="/v1/t",
            status=200,
            latency_ms=1.0,
            client_ip="192.0.2.9",
        )
        for _ in range(EVENTS_PER_RECORD)
    ]
    return encode(RequestBatch.from_events(events))


@dataclass
class _Message:
    offset: int
    value: bytes = field(default_factory=_value)
    partition: int = 0
    key: bytes | None = None
    timestamp: float = field(default_factory=lambda: now_ms() / 1000)


@dataclass
class _Event:
    message: _Message


class _Stream:
    """The part of a faust stream the ingest agent uses: `noack().events()` and `ack`."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Event | None] = asyncio.Queue()
        self.acked: list[int] = []

    def put(self, *offsets: int) -> None:
        for offset in offsets:
            self.queue.put_nowait(_Event(_Message(offset)))

    def end(self) -> None:
        self.queue.put_nowait(None)

    def noack(self) -> _Stream:
        return self

    async def events(self) -> AsyncIterator[_Event]:
        while (event := await self.queue.get()) is not None:
            yield event

    async def ack(self, event: _Event) -> bool:
        self.acked.append(event.message.offset)
        return True


@dataclass
class GatedStore(MemoryIngestStore):
    """Writes from the `gated_from`-th on wait for `gate`; `entered` counts writes that
    started, `encoded` blocks encoded ahead."""

    gate: threading.Event = field(default_factory=threading.Event)
    gated_from: int = 1
    entered: int = 0
    encoded: int = 0

    def encode(self, block: InsertBlock) -> None:
        self.encoded += 1

    def write(self, block: InsertBlock) -> None:
        self.entered += 1
        if self.entered >= self.gated_from and not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        super().write(block)


class Bugs:
    def __init__(self) -> None:
        self.seen: list[BaseException] = []

    def __call__(self, agent: str, exc: BaseException) -> None:
        self.seen.append(exc)


def _agent(store: MemoryIngestStore, take_max: int, within_s: float, bugs: Bugs) -> IngestAgent:
    agent = IngestAgent(
        topic=TOPIC,
        bootstrap_servers="127.0.0.1:1",  # never dialled: the fake has nothing to recover
        store=store,
        dead_letters=MemoryDeadLetters(),
        limits=IngestLimits(EVENTS_PER_RECORD, 1 << 20, 300_000, 35 * 86_400_000),
        on_bug=bugs,
    )
    agent.configure_take(take_max, within_s)
    return agent


async def test_blocks_land_while_the_take_is_open_and_it_is_acked_after_all_landed() -> None:
    store, stream, bugs = GatedStore(), _Stream(), Bugs()
    agent = _agent(store, take_max=3, within_s=30, bugs=bugs)
    running = asyncio.ensure_future(agent.run(stream))
    try:
        stream.put(0, 1)  # record 1 does not fit the block of record 0: that block is cut
        await eventually(lambda: store.entered >= 1, 10, "the first block's write")
        assert stream.acked == []  # the take is open (2 of 3 records) and nothing landed
        stream.put(2)  # the take is full
        store.gate.set()
        await eventually(lambda: stream.acked == [0, 1, 2], 10, "the take acknowledged")
        assert len(store.event_ids(TOPIC)) == 3 * EVENTS_PER_RECORD
        assert agent.stats.blocks == 3
        stream.end()
        await asyncio.wait_for(running, 10)
    finally:
        running.cancel()
        agent.close()
    assert bugs.seen == []


async def test_records_waiting_for_a_take_join_it_without_waiting() -> None:
    store, stream, bugs = GatedStore(), _Stream(), Bugs()
    agent = _agent(store, take_max=2, within_s=3600, bugs=bugs)
    running = asyncio.ensure_future(agent.run(stream))
    try:
        stream.put(0, 1)  # a full take: its blocks wait at the gate
        await eventually(lambda: store.entered >= 1, 10, "the first take's write")
        stream.put(2, 3)  # arrive while the first take is being written
        store.gate.set()
        # the second take is full at once: no hour of waiting
        await eventually(lambda: stream.acked == [0, 1, 2, 3], 10, "both takes acknowledged")
    finally:
        running.cancel()
        agent.close()
    assert bugs.seen == []


async def test_the_next_take_is_decoded_while_the_last_blocks_are_written() -> None:
    store, stream, bugs = GatedStore(gated_from=2), _Stream(), Bugs()
    agent = _agent(store, take_max=2, within_s=3600, bugs=bugs)
    running = asyncio.ensure_future(agent.run(stream))
    try:
        stream.put(0, 1, 2, 3)  # two full takes
        # the first take's last write waits at the gate; the second take's first block
        # is decoded and encoded meanwhile (it is cut when record 3 arrives)
        await eventually(lambda: store.encoded >= 3, 10, "the second take's first block")
        assert (store.entered, stream.acked) == (2, [])
        store.gate.set()
        await eventually(lambda: stream.acked == [0, 1, 2, 3], 10, "both takes, in order")
        assert agent.stats.blocks == 4
    finally:
        running.cancel()
        agent.close()
    assert bugs.seen == []


async def test_a_take_ends_when_its_time_is_up() -> None:
    store, stream, bugs = GatedStore(), _Stream(), Bugs()
    store.gate.set()
    agent = _agent(store, take_max=100, within_s=0.05, bugs=bugs)
    running = asyncio.ensure_future(agent.run(stream))
    try:
        stream.put(0)
        await eventually(lambda: stream.acked == [0], 10, "a lone record acknowledged")
        stream.put(1, 2)
        await eventually(lambda: stream.acked == [0, 1, 2], 10, "the next take acknowledged")
    finally:
        running.cancel()
        agent.close()


async def test_a_bug_while_writing_acknowledges_nothing_and_reaches_on_bug() -> None:
    store, stream, bugs = GatedStore(), _Stream(), Bugs()
    store.gate.set()
    agent = _agent(store, take_max=2, within_s=30, bugs=bugs)
    running = asyncio.ensure_future(agent.run(stream))
    try:
        await eventually(lambda: store.calls >= 2, 10, "recovery")  # recovery_log, watermarks
        store.failures = [TypeError("unsupported operand")]
        stream.put(0, 1)
        with pytest.raises(TypeError, match="unsupported operand"):
            await asyncio.wait_for(running, 10)
        assert [type(e) for e in bugs.seen] == [TypeError]
        assert stream.acked == []
    finally:
        running.cancel()
        agent.close()
