"""The key registry projection through the real broker, worker and chDB: the rows of
`keys`, `accounts`, `key_audit` and `key_anomalies` are what `schemas.key_ledger` makes of
the same events folded in plain Python, also across a restart (accounts loaded again from
`key_audit`) and when a second consumer group reads the whole topic again over the same
tables (every event re-delivered: nothing changes, nothing is recorded twice). Events the
fold refuses (a stale writer's, a broken chain, over the plan's limit, a delete of an
active key, an unknown account) change no row and each lands in `key_anomalies` under its
refusal code."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from infra.clickhouse import make_client
from infra.settings import Settings
from infra.wiring import Worker, running_worker
from schemas.codec import decode_key_event
from schemas.key_ledger import AccountLedger, KeyRecord, KeyStatus, apply, check
from schemas.keys import (
    KEY_EVENT_TYPES,
    KeyAccess,
    KeyEventModel,
    KeyLifecycle,
    KeyType,
    RevokeReason,
)
from schemas.plans import Plan
from schemas.topics import TopicNames
from tests.eventually import eventually
from tests.integration.ingest_helpers import produce, worker_settings
from tests.samples.keys import Chain, publish

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

ACCOUNTS = [f"acc_proj{i}" for i in range(6)]
PLANS = [Plan.FREE, Plan.PRO, Plan.BUSINESS, Plan.ENTERPRISE]


# --------------------------------------------------------------------------- the events


class History:
    """One account's events as they are appended: a valid chain, with events the fold
    must refuse put in between (they do not advance the chain). `ledger` follows the
    chain, so the generator only appends valid events as valid; `refusals` holds the
    event id and the expected refusal code of each refused one."""

    def __init__(self, account_id: str, rng: random.Random) -> None:
        self.rng = rng
        self.chain = Chain(account_id, Plan.FREE)
        self.appended: list[KeyEventModel] = list(self.chain.events)
        self.published = 0
        ledger, _ = apply(None, self.chain.events[0])
        assert ledger is not None
        self.ledger = ledger
        self.refusals: list[tuple[UUID, str]] = []
        self._n = 0

    def _scratch(self) -> Chain:
        """A chain at the same head, whose next event does not advance the real one."""
        scratch = Chain(self.chain.account_id, self.chain.plan)
        scratch.events = list(self.chain.events)
        return scratch

    def _key_id(self) -> str:
        self._n += 1
        return f"key_{self.chain.account_id.removeprefix('acc_')}k{self._n:03d}"

    def _keys(self, *statuses: KeyStatus) -> list[str]:
        return sorted(k for k, r in self.ledger.keys.items() if r.status in statuses)

    def _build(self, kind: str) -> KeyEventModel | None:
        """The next event of `kind` on the chain (appended), None if none applies."""
        chain, rng = self.chain, self.rng
        named = self._keys(KeyStatus.ACTIVE, KeyStatus.REVOKED)
        if kind == "create":
            key_id = self._key_id()
            access = rng.choice(list(KeyAccess))
            return chain.create_key(key_id, f"name {key_id}", rng.choice(list(KeyType)), access)
        if kind == "rename" and named:
            return chain.rename(rng.choice(named), f"renamed {rng.randint(0, 999)}")
        if kind == "revoke" and self._keys(KeyStatus.ACTIVE):
            reason = rng.choice(list(RevokeReason))
            return chain.revoke(rng.choice(self._keys(KeyStatus.ACTIVE)), reason)
        if kind == "delete" and self._keys(KeyStatus.REVOKED):
            return chain.delete(rng.choice(self._keys(KeyStatus.REVOKED)))
        if kind == "allow" and named:
            cidrs = rng.choice([(), ("203.0.113.0/24",), ("10.0.0.0/8", "2001:db8::/32")])
            return chain.set_allow_list(rng.choice(named), cidrs)
        rollable = [k for k in self._keys(KeyStatus.ACTIVE) if self._rollable(k)]
        if kind == "roll" and rollable:
            overlap = timedelta(hours=rng.choice([0, 1, 24]))
            return chain.roll(rng.choice(rollable), self._key_id(), overlap)
        return None

    def _expired(self, key_id: str, now: datetime) -> bool:
        return self.ledger.keys[key_id].is_expired(now)

    def _rollable(self, key_id: str) -> bool:
        record = self.ledger.keys[key_id] if self.ledger is not None else None
        return (
            record is not None
            and record.replaced_by is None
            and not record.is_expired(datetime.now(UTC))
        )

    def _append(self, event: KeyEventModel) -> KeyEventModel:
        if self.rng.random() < 0.5:  # who acted, from where
            event = event.model_copy(
                update={"actor": "key_actor001", "source_ip": IPv4Address("192.0.2.44")}
            )
            self.chain.events[-1] = event
        _, refusal = apply(self.ledger, event)
        assert refusal is None, (refusal, event)
        self.appended.append(event)
        return event

    def valid(self) -> None:
        """Append one valid event, of a kind chosen at random among those that apply."""
        kinds = ["create", "create", "rename", "revoke", "delete", "allow", "roll"]
        self.rng.shuffle(kinds)
        for kind in kinds:
            event = self._build(kind)
            if event is not None and check(self.ledger, event) is None:
                self._append(event)
                return
            if event is not None:
                self.chain.events.pop()  # over a limit: not this one
        plans = [p for p in PLANS if p is not self.chain.plan]
        self._append(self.chain.change_plan(self.rng.choice(plans)))

    def refused(self, code: str) -> None:
        """Append an event the fold refuses with `code`."""
        head = self.chain.events[-1]
        event: KeyEventModel
        if code == "stale_sequence":  # another writer decided on an older state
            event = head.model_copy(update={"event_id": uuid4()})
        elif code == "broken_chain":  # the next seq, after an event that never was
            event = self._scratch().rename(self._keys(KeyStatus.ACTIVE)[0], "after a gap")
            event = event.model_copy(update={"prev": uuid4()})
        elif code == "key_not_revoked":  # an active key that has not expired either
            now = datetime.now(UTC)
            unexpired = [k for k in self._keys(KeyStatus.ACTIVE) if not self._expired(k, now)]
            event = self._scratch().delete(unexpired[0])
        else:  # plan_limit_reached: a third live key on the Free plan
            event = self._scratch().create_key(self._key_id(), "over the limit", KeyType.LIVE)
        self.appended.append(event)
        self.refusals.append((event.event_id, code))

    def free_with_two_live_keys(self) -> None:
        """The Free plan and exactly two active live keys (none of admin access)."""
        live = [
            k
            for k in self._keys(KeyStatus.ACTIVE)
            if self.ledger.keys[k].limit_class == "live" and self.ledger.keys[k].counts
        ]
        for key_id in live[2:]:
            self._append(self.chain.revoke(key_id))
        if self.chain.plan is not Plan.FREE:
            self._append(self.chain.change_plan(Plan.FREE))
        for _ in range(2 - len(live)):
            key_id = self._key_id()
            self._append(self.chain.create_key(key_id, f"live {key_id}", KeyType.LIVE))


def _round(histories: list[History], valid: int) -> list[KeyEventModel]:
    """`valid` valid events per account with one event of each refused kind in between;
    the new events in the order they are published."""
    for h in histories:
        for i in range(valid):
            h.valid()
            if i == valid // 2:
                h.refused("stale_sequence")
        h.free_with_two_live_keys()
        h.refused("broken_chain")
        h.refused("key_not_revoked")
        h.refused("plan_limit_reached")
        h.valid()
    new: list[KeyEventModel] = []
    for h in histories:
        new += h.appended[h.published :]
        h.published = len(h.appended)
    return new


def _orphan() -> KeyEventModel:
    """A key event of an account that was never created."""
    ghost = Chain("acc_projghost", Plan.PRO)
    return ghost.create_key("key_projghost1")


# --------------------------------------------------------------------------- the truth


@dataclass(frozen=True)
class Rows:
    keys: list[tuple[Any, ...]]
    accounts: list[tuple[Any, ...]]
    audit: list[tuple[Any, ...]]
    anomalies: list[tuple[Any, ...]]


def _key_row(k: KeyRecord) -> tuple[Any, ...]:
    reason = k.revoke_reason.value if k.revoke_reason else None
    return (
        k.account_id,
        k.key_id,
        k.name,
        k.key_type.value,
        k.access.value,
        k.status.value,
        k.secret_hash,
        k.hint,
        k.created_at,
        k.created_by,
        k.updated_at,
        k.revoked_at,
        reason,
        k.deleted_at,
        list(k.allowed_cidrs),
        k.expires_at,
        k.replaces,
        k.replaced_by,
        k.seq,
    )


def _truth(events: list[KeyEventModel]) -> Rows:
    """The rows `schemas.key_ledger.apply` makes of `events`, in topic order per account."""
    ledgers: dict[str, AccountLedger] = {}
    audit: list[tuple[Any, ...]] = []
    anomalies: list[tuple[Any, ...]] = []
    for e in events:
        key_id = e.key_id if isinstance(e, KeyLifecycle) else ""
        ledger, refusal = apply(ledgers.get(e.account_id), e)
        if refusal is not None:
            anomalies.append((e.account_id, key_id, e.event_id, e.type, refusal.value))
            continue
        assert ledger is not None
        ledgers[e.account_id] = ledger
        ip = None if e.source_ip is None else str(e.source_ip)
        audit.append((e.account_id, e.seq, e.event_id, e.type, key_id, e.actor, ip, e.occurred_at))
    keys = [_key_row(k) for lg in ledgers.values() for k in lg.keys.values()]
    accounts = [
        (lg.account_id, lg.plan.value, lg.seq, lg.head, lg.created_at, lg.updated_at)
        for lg in ledgers.values()
    ]
    return Rows(sorted(keys), sorted(accounts), sorted(audit), sorted(anomalies, key=str))


_KEYS = (
    "account_id, key_id, name, key_type, access, status, secret_hash, hint, created_at, "
    "created_by, updated_at, revoked_at, revoke_reason, deleted_at, allowed_cidrs, "
    "expires_at, replaces, replaced_by, seq"
)


def _read(settings: Settings) -> tuple[Rows, list[KeyEventModel]]:
    """The projection's rows, and the events `key_audit` holds (in seq order per account)."""
    client = make_client(settings)
    try:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in client.query(sql, tz_mode="aware").result_rows]

        audit = rows(
            "SELECT account_id, seq, event_id, type, key_id, actor, source_ip, occurred_at, "
            "event FROM key_audit FINAL ORDER BY account_id, seq"
        )
        anomalies = client.query(
            "SELECT account_id, key_id, event_id, event_type, anomaly FROM key_anomalies FINAL "
            "WHERE event_type IN {types:Array(String)}",
            parameters={"types": list(KEY_EVENT_TYPES)},
        ).result_rows
        found = Rows(
            keys=sorted(rows(f"SELECT {_KEYS} FROM keys FINAL")),
            accounts=sorted(
                rows(
                    "SELECT account_id, plan, seq, head, created_at, updated_at FROM accounts FINAL"
                )
            ),
            audit=sorted(r[:-1] for r in audit),
            anomalies=sorted((tuple(r) for r in anomalies), key=str),
        )
        return found, [decode_key_event(r[-1].encode()) for r in audit]
    finally:
        client.close()


async def _projected(
    worker: Worker, settings: Settings, truth: Rows, what: str
) -> list[KeyEventModel]:
    """Wait until the projection holds `truth`; return the events of `key_audit`."""
    agent = worker.app.keys
    assert agent is not None

    async def matches() -> list[KeyEventModel]:
        found, stored = await asyncio.to_thread(_read, settings)
        assert found == truth, f"{what}: {agent.processed} events judged"
        return stored

    return await eventually(matches, 90, what, interval_s=0.3)


def _keys_processed(worker: Worker) -> int:
    assert worker.app.keys is not None
    return worker.app.keys.processed


# --------------------------------------------------------------------------- the test


async def test_the_projection_is_the_fold_of_the_topic(
    tmp_path: Path, kafka_bootstrap: str, topics: TopicNames, topic_prefix: str
) -> None:
    rng = random.Random(12)
    histories = [History(a, rng) for a in ACCOUNTS]
    orphan = _orphan()
    first = [*_round(histories, 6), orphan]
    publish(kafka_bootstrap, topics.key_events, first)
    produce(kafka_bootstrap, topics.key_events, [b'{"type": "key.created"}'], b"acc_proj0")
    settings = worker_settings(tmp_path, kafka_bootstrap, topic_prefix)

    async with running_worker(settings) as worker:
        await _projected(worker, settings, _truth(first), "the first round folded")

    second = _round(histories, 5)
    everything = first + second
    truth = _truth(everything)
    expected = {i: c for h in histories for i, c in h.refusals} | {
        orphan.event_id: "account_not_found"
    }
    assert {a[2]: a[4] for a in truth.anomalies} == expected  # the fold agrees with the test
    publish(kafka_bootstrap, topics.key_events, second)
    async with running_worker(settings) as worker:  # accounts loaded again from key_audit
        stored = await _projected(
            worker, settings, truth, "the second round folded after a restart"
        )
        assert worker.app.keys is not None and worker.app.keys.loads >= len(ACCOUNTS)
    chains = sorted((h.chain.account_id, h.chain.events) for h in histories)
    assert stored == [e for _, events in chains for e in events]

    # Another consumer group over the same tables: every event comes again.
    kafka = settings.kafka.model_copy(update={"consumer_group": f"{topic_prefix}again"})
    again = settings.model_copy(update={"kafka": kafka})
    async with running_worker(again) as worker:
        await eventually(
            lambda: _keys_processed(worker) >= len(everything), 90, "every event read again"
        )
        assert worker.app.keys is not None and worker.app.keys.anomalies == 0
    found, _ = await asyncio.to_thread(_read, settings)
    assert found == truth
