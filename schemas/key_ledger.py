"""What the key-events topic means: one account's state, folded event by event (pure).

Every reader uses this one fold (the key service deciding, the key registry projection,
`keypulse replay`, the verifier). `check(ledger, event)` says why an event is not applied,
`apply` applies it. An event is applied only when it is the account's next one
(`seq == ledger.seq + 1` and `prev == ledger.head`) and it is valid against the state
(plan limits included), so a stale or buggy writer's event changes nothing anyone sees.

`AccountLedger` is mutable for speed (an account may hold many keys); `copy()` gives the
scratch state a decision is made on.

Expiry is part of a key's record (`expires_at`), never an event: whether a key is expired
is a pure function of the record and a time (`KeyRecord.status_at(now)`). Plan limits
count the keys that are active, not replaced by a roll (a rolled pair counts once, as
its new key) and not expired *at the event's `occurred_at`*, so the fold stays a function
of the events alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from schemas.keys import (
    AccountCreated,
    KeyAccess,
    KeyAllowListChanged,
    KeyCreated,
    KeyDeleted,
    KeyEventModel,
    KeyRenamed,
    KeyRevoked,
    KeyRolled,
    KeyType,
    PlanChanged,
    RevokeReason,
)
from schemas.plans import ADMIN_KEY_LIMIT, PLAN_KEY_LIMITS, Plan

KeyChange = KeyRenamed | KeyRevoked | KeyDeleted | KeyAllowListChanged | KeyRolled
"""The events that change an existing key."""


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    DELETED = "deleted"
    EXPIRED = "expired"
    """Never stored: `KeyRecord.status_at(now)` of an active key past its `expires_at`."""


# Members looked up once: `Enum.MEMBER` is a descriptor call in Python 3.11, and these
# are read for every key on every fold and snapshot load.
_ACTIVE = KeyStatus.ACTIVE
_ADMIN = KeyAccess.ADMIN


class Refusal(StrEnum):
    """Why an event is not applied (the stable codes the key service answers with)."""

    STALE_SEQUENCE = "stale_sequence"
    BROKEN_CHAIN = "broken_chain"
    ACCOUNT_EXISTS = "account_exists"
    ACCOUNT_NOT_FOUND = "account_not_found"
    KEY_EXISTS = "key_exists"
    KEY_NOT_FOUND = "key_not_found"
    KEY_DELETED = "key_deleted"
    KEY_NOT_REVOKED = "key_not_revoked"
    KEY_ALREADY_REVOKED = "key_already_revoked"
    PLAN_LIMIT_REACHED = "plan_limit_reached"
    ADMIN_LIMIT_REACHED = "admin_limit_reached"
    SAME_PLAN = "same_plan"
    KEY_REVOKED = "key_revoked"
    KEY_EXPIRED = "key_expired"
    KEY_ALREADY_REPLACED = "key_already_replaced"

    @property
    def out_of_order(self) -> bool:
        """The event is not the account's next one (a stale writer or a duplicate)."""
        return self in (Refusal.STALE_SEQUENCE, Refusal.BROKEN_CHAIN)


@dataclass(frozen=True)
class KeyRecord:
    account_id: str
    key_id: str
    name: str
    key_type: KeyType
    access: KeyAccess
    status: KeyStatus
    secret_hash: str
    hint: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    seq: int
    revoked_at: datetime | None = None
    revoke_reason: RevokeReason | None = None
    deleted_at: datetime | None = None
    allowed_cidrs: tuple[str, ...] = ()
    """Networks the key may be used from (empty: anywhere), normalised CIDR strings."""
    expires_at: datetime | None = None
    replaces: str | None = None
    """The key id this key was rolled from."""
    replaced_by: str | None = None
    """The key id of the key rolled from this one."""

    @property
    def limit_class(self) -> str:
        """What it counts against: "admin", or its key type."""
        return "admin" if self.access is _ADMIN else self.key_type.value

    def is_expired(self, now: datetime) -> bool:
        """Past its `expires_at` at `now` (a key expires at that instant)."""
        return self.expires_at is not None and now >= self.expires_at

    def status_at(self, now: datetime) -> KeyStatus:
        """The stored status, or `expired` for an active key past its expiry."""
        if self.status is KeyStatus.ACTIVE and self.is_expired(now):
            return KeyStatus.EXPIRED
        return self.status

    @property
    def counts(self) -> bool:
        """Counted against the plan (until it expires): active and not rolled over (a
        rolled key's successor counts for the pair)."""
        return self.status is _ACTIVE and self.replaced_by is None


@dataclass(frozen=True)
class IdempotentCreate:
    key_id: str
    request_hash: str | None
    at: datetime


@dataclass
class AccountLedger:
    account_id: str
    plan: Plan
    seq: int
    head: UUID
    created_at: datetime
    updated_at: datetime
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    """Counted keys (`KeyRecord.counts`) per limit class ("live", "test", "admin"), expired
    ones included; `count` leaves those out."""
    expiring: dict[str, dict[str, datetime]] = field(default_factory=dict)
    """Per limit class, the counted keys that have an `expires_at` (key id -> it)."""
    idempotency: dict[str, IdempotentCreate] = field(default_factory=dict)

    def copy(self) -> AccountLedger:
        return replace(
            self,
            keys=dict(self.keys),
            active=dict(self.active),
            expiring={c: dict(e) for c, e in self.expiring.items()},
            idempotency=dict(self.idempotency),
        )

    def limit(self, limit_class: str) -> int | None:
        """How many active keys of the class the plan allows (None: unlimited)."""
        if limit_class == "admin":
            return ADMIN_KEY_LIMIT
        limits = PLAN_KEY_LIMITS[self.plan]
        return limits.live if limit_class == "live" else limits.test

    def count(self, limit_class: str, at: datetime | None = None) -> int:
        """The keys of the class counted against the plan at `at` (default: the time of
        the account's last event): active, not rolled over, not expired."""
        when = self.updated_at if at is None else at
        expired = sum(1 for e in self.expiring.get(limit_class, {}).values() if when >= e)
        return self.active.get(limit_class, 0) - expired


def _order(ledger: AccountLedger, event: KeyEventModel) -> Refusal | None:
    if event.seq != ledger.seq + 1:
        return Refusal.STALE_SEQUENCE
    if event.prev != ledger.head:
        return Refusal.BROKEN_CHAIN
    return None


def _create_refusal(ledger: AccountLedger, event: KeyCreated) -> Refusal | None:
    if event.key_id in ledger.keys:
        return Refusal.KEY_EXISTS
    limit_class = "admin" if event.access is KeyAccess.ADMIN else event.key_type.value
    limit = ledger.limit(limit_class)
    if limit is None or ledger.count(limit_class, event.occurred_at) < limit:
        return None
    return Refusal.ADMIN_LIMIT_REACHED if limit_class == "admin" else Refusal.PLAN_LIMIT_REACHED


def _roll_refusal(ledger: AccountLedger, key: KeyRecord, event: KeyRolled) -> Refusal | None:
    if key.status is KeyStatus.REVOKED:
        return Refusal.KEY_REVOKED
    if key.replaced_by is not None:
        return Refusal.KEY_ALREADY_REPLACED
    if key.is_expired(event.occurred_at):
        return Refusal.KEY_EXPIRED
    if event.new_key_id in ledger.keys:
        return Refusal.KEY_EXISTS
    return None


def _change_refusal(ledger: AccountLedger, event: KeyChange) -> Refusal | None:
    key = ledger.keys.get(event.key_id)
    if key is None:
        return Refusal.KEY_NOT_FOUND
    if key.status is KeyStatus.DELETED:
        return Refusal.KEY_DELETED
    if isinstance(event, KeyRevoked) and key.status is KeyStatus.REVOKED:
        return Refusal.KEY_ALREADY_REVOKED
    if isinstance(event, KeyDeleted) and key.status_at(event.occurred_at) is KeyStatus.ACTIVE:
        return Refusal.KEY_NOT_REVOKED
    if isinstance(event, KeyRolled):
        return _roll_refusal(ledger, key, event)
    return None


def check(ledger: AccountLedger | None, event: KeyEventModel) -> Refusal | None:
    """Why `event` would not be applied to `ledger` (None: it would be)."""
    if isinstance(event, AccountCreated):
        if ledger is not None:
            return Refusal.ACCOUNT_EXISTS
        if event.seq != 1:
            return Refusal.STALE_SEQUENCE
        return None if event.prev is None else Refusal.BROKEN_CHAIN
    if ledger is None:
        return Refusal.ACCOUNT_NOT_FOUND
    out_of_order = _order(ledger, event)
    if out_of_order is not None:
        return out_of_order
    if isinstance(event, PlanChanged):
        return Refusal.SAME_PLAN if event.plan is ledger.plan else None
    if isinstance(event, KeyCreated):
        return _create_refusal(ledger, event)
    return _change_refusal(ledger, event)


def _advance(ledger: AccountLedger, event: KeyEventModel) -> None:
    ledger.seq = event.seq
    ledger.head = event.event_id
    ledger.updated_at = event.occurred_at


def _set_key(ledger: AccountLedger, before: KeyRecord | None, after: KeyRecord) -> None:
    for record, step in ((before, -1), (after, 1)):
        if record is not None and record.counts:
            cls = record.limit_class
            ledger.active[cls] = ledger.active.get(cls, 0) + step
            expiring = ledger.expiring.setdefault(cls, {})
            if step < 0:
                expiring.pop(record.key_id, None)
            elif record.expires_at is not None:
                expiring[record.key_id] = record.expires_at
    ledger.keys[after.key_id] = after


def restore_key(ledger: AccountLedger, record: KeyRecord) -> None:
    """Add a key record read from a snapshot (`schemas.key_state`), counting it as the
    fold does."""
    _set_key(ledger, None, record)


def _created(event: KeyCreated) -> KeyRecord:
    return KeyRecord(
        account_id=event.account_id,
        key_id=event.key_id,
        name=event.name,
        key_type=event.key_type,
        access=event.access,
        status=KeyStatus.ACTIVE,
        secret_hash=event.secret_hash,
        hint=event.hint,
        created_at=event.occurred_at,
        created_by=event.actor,
        updated_at=event.occurred_at,
        seq=event.seq,
        allowed_cidrs=event.allowed_cidrs,
        expires_at=event.expires_at,
    )


def _successor(old: KeyRecord, event: KeyRolled) -> KeyRecord:
    """The key a roll makes: the old key's name, type, access and allow-list."""
    return KeyRecord(
        account_id=old.account_id,
        key_id=event.new_key_id,
        name=old.name,
        key_type=old.key_type,
        access=old.access,
        status=KeyStatus.ACTIVE,
        secret_hash=event.secret_hash,
        hint=event.hint,
        created_at=event.occurred_at,
        created_by=event.actor,
        updated_at=event.occurred_at,
        seq=event.seq,
        allowed_cidrs=old.allowed_cidrs,
        replaces=old.key_id,
    )


def _changed(key: KeyRecord, event: KeyChange) -> KeyRecord:
    at, seq = event.occurred_at, event.seq
    if isinstance(event, KeyRenamed):
        return replace(key, name=event.name, updated_at=at, seq=seq)
    if isinstance(event, KeyAllowListChanged):
        return replace(key, allowed_cidrs=event.allowed_cidrs, updated_at=at, seq=seq)
    if isinstance(event, KeyRolled):
        return replace(
            key,
            expires_at=event.old_expires_at,
            replaced_by=event.new_key_id,
            updated_at=at,
            seq=seq,
        )
    if isinstance(event, KeyRevoked):
        return replace(
            key,
            status=KeyStatus.REVOKED,
            revoked_at=at,
            revoke_reason=event.reason,
            updated_at=at,
            seq=seq,
        )
    return replace(key, status=KeyStatus.DELETED, deleted_at=at, updated_at=at, seq=seq)


def _remember(
    ledger: AccountLedger, idempotency_key: str | None, key_id: str, event: KeyCreated | KeyRolled
) -> None:
    if idempotency_key is not None:
        ledger.idempotency[idempotency_key] = IdempotentCreate(
            key_id, event.request_hash, event.occurred_at
        )


def apply(
    ledger: AccountLedger | None, event: KeyEventModel
) -> tuple[AccountLedger | None, Refusal | None]:
    """The account's ledger after `event` (mutated in place, or new for account.created),
    or the unchanged ledger and why the event was not applied."""
    refusal = check(ledger, event)
    if refusal is not None:
        return ledger, refusal
    if isinstance(event, AccountCreated):
        return AccountLedger(
            account_id=event.account_id,
            plan=event.plan,
            seq=event.seq,
            head=event.event_id,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
        ), None
    assert ledger is not None  # check() refused events for a missing account
    if isinstance(event, PlanChanged):
        ledger.plan = event.plan
    elif isinstance(event, KeyCreated):
        _set_key(ledger, None, _created(event))
        _remember(ledger, event.idempotency_key, event.key_id, event)
    else:
        before = ledger.keys[event.key_id]
        _set_key(ledger, before, _changed(before, event))
        if isinstance(event, KeyRolled):
            _set_key(ledger, None, _successor(before, event))
            _remember(ledger, event.idempotency_key, event.new_key_id, event)
    _advance(ledger, event)
    return ledger, None
