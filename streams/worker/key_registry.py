"""Pure key-registry reducer: apply one lifecycle event to a key's current state.

Decisions for duplicates and out-of-order events (documented in docs/key-registry.md):
- a create for a key that exists is a no-op (duplicate delivery or replay);
- a rename of a revoked key changes the name and keeps it revoked; a rename of a deleted
  or unknown key is ignored and recorded as an anomaly;
- a revoke is idempotent (the first revoke time is kept); a revoke of an unknown key is
  an anomaly;
- a delete of a key that was never revoked is not applied: the key stays as it is and
  the attempt is recorded as an anomaly (deletion requires revocation first);
- any event for a deleted key is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from schemas.codec import KeyEventModel
from schemas.keys import KeyCreated, KeyDeleted, KeyRenamed, KeyRevoked
from streams.worker.ports import Anomaly, KeyState, KeyStatus


@dataclass(frozen=True)
class Outcome:
    state: KeyState | None
    changed: bool
    anomaly: Anomaly | None = None
    detail: str = ""


def reduce_key(state: KeyState | None, event: KeyEventModel, version: int) -> Outcome:
    """The key's state after `event` (at source position `version`)."""
    if isinstance(event, KeyCreated):
        return _create(state, event, version)
    if state is None:
        return Outcome(None, False, Anomaly.UNKNOWN_KEY, f"{event.type} before key.created")
    if state.account_id != event.account_id:
        return Outcome(state, False, Anomaly.ACCOUNT_MISMATCH, f"event for {event.account_id}")
    if state.status is KeyStatus.DELETED:
        return Outcome(state, False, Anomaly.EVENT_AFTER_DELETE, f"{event.type} after delete")
    if isinstance(event, KeyRenamed):
        return _rename(state, event, version)
    if isinstance(event, KeyRevoked):
        return _revoke(state, event, version)
    return _delete(state, event, version)


def _create(state: KeyState | None, event: KeyCreated, version: int) -> Outcome:
    if state is not None:
        return Outcome(state, changed=False)
    created = KeyState(
        account_id=event.account_id,
        key_id=event.key_id,
        name=event.name,
        key_type=event.key_type.value,
        access=event.access.value,
        status=KeyStatus.ACTIVE,
        plan=event.plan.value,
        created_at=event.occurred_at,
        revoked_at=None,
        deleted_at=None,
        updated_at=event.occurred_at,
        version=version,
    )
    return Outcome(created, changed=True)


def _rename(state: KeyState, event: KeyRenamed, version: int) -> Outcome:
    if event.name == state.name:
        return Outcome(state, changed=False)
    renamed = replace(state, name=event.name, updated_at=event.occurred_at, version=version)
    return Outcome(renamed, changed=True)


def _revoke(state: KeyState, event: KeyRevoked, version: int) -> Outcome:
    if state.status is KeyStatus.REVOKED:
        return Outcome(state, changed=False)
    revoked = replace(
        state,
        status=KeyStatus.REVOKED,
        revoked_at=event.occurred_at,
        updated_at=event.occurred_at,
        version=version,
    )
    return Outcome(revoked, changed=True)


def _delete(state: KeyState, event: KeyDeleted, version: int) -> Outcome:
    if state.status is not KeyStatus.REVOKED:
        return Outcome(state, False, Anomaly.DELETE_WITHOUT_REVOKE, "key is still active")
    deleted = replace(
        state,
        status=KeyStatus.DELETED,
        deleted_at=event.occurred_at,
        updated_at=event.occurred_at,
        version=version,
    )
    return Outcome(deleted, changed=True)
