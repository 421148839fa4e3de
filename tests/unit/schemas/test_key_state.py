"""The key-state snapshot: a reader that starts from it ends with exactly the ledgers of a
full replay, whatever the writers did (several, interleaved, stopped mid-cut).

The truth is the fold over every event (`schemas.key_ledger.apply`); the snapshot side is
simulated with the real record encoding, compaction as Kafka does it (the newest record
per message key), the real `start_offsets`, and the follower's skip rule (an event at or
below the account's `source_offset` is already held)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.key_ledger import AccountLedger, apply
from schemas.key_state import (
    CHUNK_ITEMS,
    AccountPlace,
    Checkpoint,
    StateAssembler,
    encode_account,
    encode_checkpoint,
    start_offsets,
)
from schemas.keys import KeyEventModel, KeyType, RevokeReason
from schemas.plans import Plan
from tests.samples.keys import Chain

Step = tuple[Any, ...]
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PARTITIONS = [0, 1]


def _fold(events: list[KeyEventModel]) -> dict[str, AccountLedger]:
    ledgers: dict[str, AccountLedger] = {}
    for event in events:
        ledger, refusal = apply(ledgers.get(event.account_id), event)
        if refusal is None and ledger is not None:
            ledgers[event.account_id] = ledger
    return ledgers


def _same(a: AccountLedger, b: AccountLedger) -> None:
    assert (a.account_id, a.plan, a.seq, a.head, a.created_at, a.updated_at) == (
        b.account_id,
        b.plan,
        b.seq,
        b.head,
        b.created_at,
        b.updated_at,
    )
    assert a.keys == b.keys
    assert {c: n for c, n in a.active.items() if n} == {c: n for c, n in b.active.items() if n}
    assert {c: e for c, e in a.expiring.items() if e} == {c: e for c, e in b.expiring.items() if e}
    assert a.idempotency == b.idempotency


def _rich_chain() -> Chain:
    chain = Chain("acc_state01", Plan.PRO, at=T0)
    chain.create_key("key_live0000000001", at=T0)
    chain.create_key("key_test0000000001", key_type=KeyType.TEST, at=T0)
    chain.rename("key_live0000000001", "Production web", at=T0 + timedelta(minutes=1))
    chain.create_key("key_live0000000002", at=T0 + timedelta(minutes=2))
    chain.revoke("key_live0000000002", RevokeReason.COMPROMISED, at=T0 + timedelta(minutes=3))
    chain.delete("key_live0000000002", at=T0 + timedelta(minutes=4))
    chain.change_plan(Plan.BUSINESS, at=T0 + timedelta(minutes=5))
    return chain


def _load(records: list[tuple[bytes, bytes]]) -> StateAssembler:
    assembler = StateAssembler()
    for key, value in records:
        assembler.add(key, value)
    return assembler


def test_an_account_round_trips_through_its_records() -> None:
    chain = _rich_chain()
    (ledger,) = _fold(chain.events).values()
    place = AccountPlace(partition=1, first_offset=3, source_offset=40)
    state = _load(encode_account(ledger, place, "w1", 1)).result()
    loaded = state.accounts["acc_state01"]
    assert (loaded.place, loaded.writer, loaded.cut) == (place, "w1", 1)
    _same(loaded.ledger, ledger)
    assert not state.incomplete


def test_a_large_account_is_chunked_and_a_mixed_set_of_chunks_is_not_trusted() -> None:
    chain = Chain("acc_state02", at=T0)
    for i in range(CHUNK_ITEMS * 2 + 5):
        chain.create_key(f"key_bulk{i:010d}", at=T0)
    (ledger,) = _fold(chain.events).values()
    place = AccountPlace(0, 0, len(chain.events) - 1)
    first = encode_account(ledger, place, "w1", 1)
    assert len(first) == 1 + 3  # a header and three chunks
    loaded = _load(first).result().accounts["acc_state02"].ledger
    _same(loaded, ledger)
    # a second cut that stopped after its header and one chunk: chunks 1 and 2 are older
    chain.rename("key_bulk0000000000", "renamed", at=T0)
    (newer,) = _fold(chain.events).values()
    second = encode_account(newer, AccountPlace(0, 0, place.source_offset + 1), "w1", 2)
    state = _load(first + second[:2]).result()
    assert "acc_state02" not in state.accounts
    assert state.incomplete["acc_state02"].first_offset == 0
    state.checkpoints[(0, "w1")] = Checkpoint(0, place.source_offset, "w1", 1)
    assert start_offsets(state, [0]) == {0: 0}  # replay that account from its start


def test_no_checkpoint_means_reading_from_the_beginning() -> None:
    (ledger,) = _fold(_rich_chain().events).values()
    state = _load(encode_account(ledger, AccountPlace(0, 0, 6), "w1", 1)).result()
    assert start_offsets(state, PARTITIONS) == {0: 0, 1: 0}


# -- the simulation: writers, compaction and a reader ------------------------------------


@dataclass
class _Writer:
    """A follower that has read a prefix of each partition, and the writer on it."""

    name: str
    positions: dict[int, int] = field(default_factory=lambda: dict.fromkeys(PARTITIONS, 0))
    ledgers: dict[str, AccountLedger] = field(default_factory=dict)
    places: dict[str, AccountPlace] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    cuts: int = 0

    def read(self, log: dict[int, list[KeyEventModel]], partition: int, upto: int) -> None:
        for offset in range(self.positions[partition], upto):
            event = log[partition][offset]
            ledger, refusal = apply(self.ledgers.get(event.account_id), event)
            if refusal is None and ledger is not None:
                self.ledgers[event.account_id] = ledger
                before = self.places.get(event.account_id)
                first = offset if before is None else before.first_offset
                self.places[event.account_id] = AccountPlace(partition, first, offset)
                self.dirty.add(event.account_id)
        self.positions[partition] = max(self.positions[partition], upto)

    def cut(self, topic: list[tuple[bytes, bytes]], stop_after: int | None) -> bool:
        """Append one cut's records to `topic`, or only `stop_after` of them and crash
        (return False: the writer never writes again)."""
        number = self.cuts + 1
        names = list(self.ledgers) if self.cuts == 0 else sorted(self.dirty)
        records = [
            r
            for a in names
            for r in encode_account(self.ledgers[a].copy(), self.places[a], self.name, number)
        ]
        records += [
            encode_checkpoint(Checkpoint(p, pos - 1, self.name, number))
            for p, pos in self.positions.items()
            if pos > 0
        ]
        if stop_after is not None and stop_after < len(records):
            topic.extend(records[:stop_after])
            return False
        topic.extend(records)
        self.dirty.clear()
        self.cuts = number
        return True


def _read_from_snapshot(
    topic: list[tuple[bytes, bytes]], log: dict[int, list[KeyEventModel]]
) -> dict[str, AccountLedger]:
    state = _load(topic).result()  # compaction keeps the newest per key: same as all
    ledgers = {a: loaded.ledger for a, loaded in state.accounts.items()}
    places = {a: loaded.place for a, loaded in state.accounts.items()}
    for partition, begin in start_offsets(state, PARTITIONS).items():
        for offset in range(begin, len(log[partition])):
            event = log[partition][offset]
            place = places.get(event.account_id)
            if place is not None and offset <= place.source_offset:
                continue
            ledger, refusal = apply(ledgers.get(event.account_id), event)
            if refusal is None and ledger is not None:
                ledgers[event.account_id] = ledger
    return ledgers


@st.composite
def _histories(draw: st.DrawFn) -> tuple[dict[int, list[KeyEventModel]], list[Step]]:
    chains = [Chain(f"acc_sim{i:03d}", at=T0) for i in range(draw(st.integers(1, 4)))]
    created: dict[int, list[str]] = {i: [] for i in range(len(chains))}
    order: list[int] = []
    for step in range(draw(st.integers(0, 25))):
        i = draw(st.integers(0, len(chains) - 1))
        keys = created[i]
        action = draw(st.sampled_from(["create", "create", "rename", "revoke"]))
        if action == "create" or not keys:
            key_id = f"key_sim{i}{step:09d}"
            chains[i].create_key(key_id, at=T0)
            keys.append(key_id)
        elif action == "rename":
            chains[i].rename(draw(st.sampled_from(keys)), f"name {step}", at=T0)
        else:
            chains[i].revoke(draw(st.sampled_from(keys)), at=T0)
        order.append(i)
    # interleave the chains into two partitions (account i on partition i % 2), in order
    log: dict[int, list[KeyEventModel]] = {p: [] for p in PARTITIONS}
    nexts = [1] * len(chains)
    for i, chain in enumerate(chains):
        log[i % 2].append(chain.events[0])
    for i in order:
        log[i % 2].append(chains[i].events[nexts[i]])
        nexts[i] += 1
    # what the writers do: ("read", writer, partition, fraction) or ("cut", writer, crash)
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just("read"),
                    st.integers(0, 1),
                    st.sampled_from(PARTITIONS),
                    st.sampled_from([0.25, 0.5, 1.0]),
                ),
                st.tuples(st.just("cut"), st.integers(0, 1), st.none() | st.integers(0, 6)),
            ),
            max_size=16,
        )
    )
    return log, steps


@settings(max_examples=400, deadline=None)
@given(_histories())
def test_starting_from_the_snapshot_equals_a_full_replay(
    history: tuple[dict[int, list[KeyEventModel]], list[Step]],
) -> None:
    log, steps = history
    writers = [_Writer("w1"), _Writer("w2")]
    crashed: set[int] = set()
    topic: list[tuple[bytes, bytes]] = []
    for step in steps:
        who = step[1]
        if who in crashed:
            continue
        if step[0] == "read":
            _, _, partition, fraction = step
            writers[who].read(log, partition, round(fraction * len(log[partition])))
        elif not writers[who].cut(topic, step[2]):
            crashed.add(who)
    truth = _fold([e for p in PARTITIONS for e in log[p]])
    started = _read_from_snapshot(topic, log)
    assert sorted(started) == sorted(truth)
    for account_id, ledger in truth.items():
        _same(started[account_id], ledger)


def test_a_lagging_writer_overwriting_a_record_makes_the_reader_replay_further_back() -> None:
    chain = Chain("acc_sim000", at=T0)
    for i in range(6):
        chain.create_key(f"key_lag{i:011d}", at=T0)
    log: dict[int, list[KeyEventModel]] = {0: list(chain.events), 1: []}
    ahead, behind = _Writer("w1"), _Writer("w2")
    ahead.read(log, 0, 7)
    topic: list[tuple[bytes, bytes]] = []
    assert ahead.cut(topic, None)  # the whole account, checkpoint at offset 6
    behind.read(log, 0, 3)
    assert not behind.cut(topic, 2)  # its older record of the account, then it crashes
    state = _load(topic).result()
    assert state.accounts["acc_sim000"].ledger.seq == 3
    assert start_offsets(state, [0]) == {0: 3}
    _same(_read_from_snapshot(topic, log)["acc_sim000"], _fold(chain.events)["acc_sim000"])
