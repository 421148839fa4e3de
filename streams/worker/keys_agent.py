"""The key registry agent: key events -> `key_audit`, `keys`, `accounts`, `key_anomalies`,
folded with the one fold, `schemas.key_ledger.apply`.

An account's events share one partition, so the agent sees them in topic order, as every
other reader does. It keeps the state of each account it has touched (`AccountState`: the
ledger, the ids of the events applied and refused) in memory and loads an account from the
store on first touch: the account's applied events, from `key_audit`, folded again (the
exact ledger), and the ids of its refused events. The cache is dropped on every partition
assignment or revocation (`forget`), since another worker may have folded the account's
newer events meanwhile.

Each event is judged once, in topic order:
- applied (the account's next event and valid): its audit row, the key's row and the
  account's row are written (versions: the account seq);
- refused (stale_sequence, broken_chain, plan_limit_reached, key_not_revoked, ...): it
  changes nothing and is recorded in `key_anomalies` under the refusal code;
- seen before (re-delivered after a restart, or a replay over the rows): refused before,
  nothing; applied before, its rows are written again as they now are (identical rows, and
  the way a save that stopped after the audit rows is completed).

Transient store failures (per `store_transient`) are retried with backoff; any other error
ends the agent through `on_bug` (by default `stop_on_bug`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from schemas.codec import decode_key_event
from schemas.errors import InvalidMessage
from schemas.key_ledger import AccountLedger, Refusal, apply
from schemas.keys import (
    AccountCreated,
    KeyAllowListChanged,
    KeyCreated,
    KeyEventModel,
    KeyLifecycle,
    KeyRenamed,
    KeyRevoked,
    KeyRolled,
    PlanChanged,
)
from schemas.runtime.dead_letters import DeadLetterSink, dead_letter_headers
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from streams.worker.failures import stop_on_bug
from streams.worker.ports import (
    AccountHistory,
    AccountRecord,
    AnomalyRecord,
    AuditEntry,
    KeyChanges,
    KeyStore,
)

log = logging.getLogger(__name__)


class CorruptHistory(Exception):
    """The store holds an applied event that the fold refuses (a bug, never transient)."""


@dataclass
class AccountState:
    """The projection's view of one account: `ledger` (None before `account.created`),
    seq -> event id of every applied event, and the ids of the refused ones."""

    account_id: str
    ledger: AccountLedger | None = None
    applied: dict[int, UUID] = field(default_factory=dict)
    refused: set[UUID] = field(default_factory=set)


def restore(history: AccountHistory) -> AccountState:
    """The account's state from its stored history (its applied events folded again)."""
    state = AccountState(history.account_id, refused=set(history.refused))
    for event in history.applied:
        ledger, refusal = apply(state.ledger, event)
        if refusal is not None:
            raise CorruptHistory(
                f"stored event {event.event_id} of {history.account_id} (seq {event.seq}) "
                f"is refused on load: {refusal.value}"
            )
        state.ledger = ledger
        state.applied[event.seq] = event.event_id
    return state


def key_id_of(event: KeyEventModel) -> str:
    """The key an event is about ("" for an account event; a roll's old key)."""
    return event.key_id if isinstance(event, KeyLifecycle) else ""


def key_ids_of(event: KeyEventModel) -> tuple[str, ...]:
    """Every key whose row an event changes (a roll: the old key and the new one)."""
    if isinstance(event, KeyRolled):
        return (event.key_id, event.new_key_id)
    key_id = key_id_of(event)
    return (key_id,) if key_id else ()


def audit_detail(event: KeyEventModel) -> str:
    """What the event changed, as the audit log shows it (a function of the event only)."""
    if isinstance(event, AccountCreated):
        return f"plan: {event.plan.value}"
    if isinstance(event, PlanChanged):
        return f"plan: {event.previous.value} -> {event.plan.value}"
    if isinstance(event, KeyCreated):
        detail = f"name: {event.name}; type: {event.key_type.value}; access: {event.access.value}"
        if event.allowed_cidrs:
            detail += f"; allowed: {', '.join(event.allowed_cidrs)}"
        if event.expires_at is not None:
            detail += f"; expires: {event.expires_at.isoformat()}"
        return detail
    if isinstance(event, KeyAllowListChanged):
        return f"allowed: {', '.join(event.allowed_cidrs) or 'anywhere'}"
    if isinstance(event, KeyRolled):
        return f"new key: {event.new_key_id}; old key expires: {event.old_expires_at.isoformat()}"
    if isinstance(event, KeyRenamed):
        return f"name: {event.name}"
    if isinstance(event, KeyRevoked):
        return f"reason: {event.reason.value}"
    return ""


def refusal_detail(event: KeyEventModel, ledger: AccountLedger | None) -> str:
    """The event's place in the chain against the account's (why it was not its next)."""
    prev = event.prev or "none"
    if ledger is None:
        return f"seq {event.seq}, prev {prev}; account not created"
    return f"seq {event.seq}, prev {prev}; account at seq {ledger.seq}, head {ledger.head}"


def _anomaly(event: KeyEventModel, refusal: Refusal, ledger: AccountLedger | None) -> AnomalyRecord:
    return AnomalyRecord(
        account_id=event.account_id,
        key_id=key_id_of(event),
        event_id=event.event_id,
        event_type=event.type,
        anomaly=refusal.value,
        detail=refusal_detail(event, ledger),
        occurred_at=event.occurred_at,
        version=event.seq,
    )


def account_record(ledger: AccountLedger) -> AccountRecord:
    return AccountRecord(
        account_id=ledger.account_id,
        plan=ledger.plan.value,
        seq=ledger.seq,
        head=ledger.head,
        created_at=ledger.created_at,
        updated_at=ledger.updated_at,
    )


@dataclass
class _Take:
    """What a take changes so far: rows in order, touched accounts and keys once each."""

    changes: KeyChanges = field(default_factory=KeyChanges)
    accounts: dict[str, None] = field(default_factory=dict)
    keys: dict[tuple[str, str], None] = field(default_factory=dict)

    def touch(self, event: KeyEventModel) -> None:
        self.changes.audit.append(AuditEntry(event, audit_detail(event)))
        self.accounts[event.account_id] = None
        for key_id in key_ids_of(event):
            self.keys[(event.account_id, key_id)] = None

    def result(self, states: dict[str, AccountState]) -> KeyChanges:
        for account_id in self.accounts:
            ledger = states[account_id].ledger
            if ledger is not None:
                self.changes.accounts.append(account_record(ledger))
        for account_id, key_id in self.keys:
            ledger = states[account_id].ledger
            if ledger is not None and key_id in ledger.keys:
                self.changes.keys.append(ledger.keys[key_id])
        return self.changes


def _judge(state: AccountState, event: KeyEventModel, take: _Take) -> None:
    if event.event_id in state.refused:
        return
    if state.applied.get(event.seq) == event.event_id:
        take.touch(event)
        return
    before = state.ledger
    ledger, refusal = apply(state.ledger, event)
    if refusal is not None:
        state.refused.add(event.event_id)
        take.changes.anomalies.append(_anomaly(event, refusal, before))
        return
    state.ledger = ledger
    state.applied[event.seq] = event.event_id
    take.touch(event)


def fold_key_events(states: dict[str, AccountState], events: Iterable[KeyEventModel]) -> KeyChanges:
    """Judge each event against its account's state in `states` (which must hold every
    account of `events`; updated in place) and return what changes in the projection."""
    take = _Take()
    for event in events:
        _judge(states[event.account_id], event, take)
    return take.result(states)


def _try_decode(messages: Sequence[Any]) -> list[KeyEventModel | InvalidMessage]:
    out: list[KeyEventModel | InvalidMessage] = []
    for message in messages:
        try:
            out.append(decode_key_event(message.value or b""))
        except InvalidMessage as exc:
            out.append(exc)
    return out


class KeysAgent:
    def __init__(
        self,
        topic: str,
        store: KeyStore,
        dead_letters: DeadLetterSink,
        store_transient: IsTransient = io_failure,
        on_bug: Callable[[str, BaseException], None] = stop_on_bug,
    ) -> None:
        self._topic = topic
        self._store = store
        self._dlq = dead_letters
        self._store_transient = store_transient
        self._on_bug = on_bug
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-keys")
        self._states: dict[str, AccountState] = {}
        self.processed = 0  # key events decoded and judged
        self.applied = 0  # audit rows written (applied events; re-delivered ones again)
        self.written = 0  # key rows written
        self.anomalies = 0  # events refused
        self.loads = 0  # accounts loaded from the store

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await off_loop_until_done(
            self._executor, fn, *args, logger=log, transient=self._store_transient
        )

    def forget(self) -> None:
        """Drop every cached account (call on each partition assignment and revocation);
        a take in flight keeps the states it started with."""
        self._states = {}

    async def run(self, stream: Any) -> None:
        """The faust agent body (concurrency 1); a non-transient error goes to `on_bug`."""
        try:
            async for events in stream.take_events(500, 0.2):
                await self.process_events(events)
        except Exception as exc:
            self._on_bug("key registry agent", exc)
            raise

    async def _states_for(self, events: Sequence[KeyEventModel]) -> dict[str, AccountState]:
        states = self._states
        missing = sorted({e.account_id for e in events} - states.keys())
        if missing:
            histories: dict[str, AccountHistory] = await self._blocking(self._store.load, missing)
            for account_id in missing:
                states[account_id] = restore(
                    histories.get(account_id) or AccountHistory(account_id)
                )
            self.loads += len(missing)
        return states

    async def _decoded(self, events: Sequence[Any]) -> list[KeyEventModel]:
        """Decode a take on the agent's thread (pydantic validation of a few hundred
        events would hold the event loop, and the HTTP API it serves, for tens of ms);
        undecodable records go to the dead-letter topic, in order."""
        messages = [e.message for e in events]
        loop = asyncio.get_running_loop()
        attempts = await loop.run_in_executor(self._executor, _try_decode, messages)
        decoded: list[KeyEventModel] = []
        for message, attempt in zip(messages, attempts, strict=True):
            if isinstance(attempt, InvalidMessage):
                headers = dead_letter_headers(
                    attempt, self._topic, message.partition, message.offset
                )
                await self._dlq.send(message.key, message.value or b"", headers)
            else:
                decoded.append(attempt)
        return decoded

    async def process_events(self, events: Sequence[Any]) -> None:
        decoded = await self._decoded(events)
        if not decoded:
            return
        try:
            states = await self._states_for(decoded)
            changes = await asyncio.get_running_loop().run_in_executor(
                self._executor, fold_key_events, states, decoded
            )
            if changes:
                await self._blocking(self._store.save, changes)
        except BaseException:
            self.forget()  # the cache may hold what was not saved
            raise
        self.processed += len(decoded)
        self.applied += len(changes.audit)
        self.written += len(changes.keys)
        self.anomalies += len(changes.anomalies)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
