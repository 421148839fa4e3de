"""Valid key-events chains for tests that need keys on the topic without a key service.

`Chain(account_id, plan)` starts with `account.created`; each builder method appends the
account's next event (seq and prev filled in) and returns it. `publish(bootstrap, topic,
events)` appends them and waits for the broker. Secrets are generated with the real
format and kept in `chain.secrets[key_id]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.key_format import generate_secret, hash_secret, hint
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
from schemas.plans import Plan
from streams.client.key_events import KeyEventPublisher, PublisherConfig


class Chain:
    def __init__(
        self, account_id: str, plan: Plan = Plan.ENTERPRISE, at: datetime | None = None
    ) -> None:
        self.account_id = account_id
        self.plan = plan
        self.events: list[KeyEventModel] = []
        self.secrets: dict[str, str] = {}
        self.key_types: dict[str, KeyType] = {}
        self._append(AccountCreated, at, plan=plan)

    def _append(self, cls: type[Any], at: datetime | None, **fields: Any) -> Any:
        head = self.events[-1] if self.events else None
        envelope: dict[str, Any] = {
            "account_id": self.account_id,
            "seq": 1 if head is None else head.seq + 1,
            "prev": None if head is None else head.event_id,
        }
        if at is not None:
            envelope["occurred_at"] = at
        event = cls(**envelope, **fields)
        self.events.append(event)
        return event

    def create_key(
        self,
        key_id: str,
        name: str | None = None,
        key_type: KeyType = KeyType.LIVE,
        access: KeyAccess = KeyAccess.FULL,
        at: datetime | None = None,
    ) -> KeyCreated:
        secret = generate_secret(key_type.value)
        self.secrets[key_id] = secret
        self.key_types[key_id] = key_type
        created: KeyCreated = self._append(
            KeyCreated,
            at,
            key_id=key_id,
            name=name or f"name of {key_id}",
            key_type=key_type,
            access=access,
            secret_hash=hash_secret(secret),
            hint=hint(secret),
        )
        return created

    def rename(self, key_id: str, name: str, at: datetime | None = None) -> KeyRenamed:
        renamed: KeyRenamed = self._append(KeyRenamed, at, key_id=key_id, name=name)
        return renamed

    def revoke(
        self,
        key_id: str,
        reason: RevokeReason = RevokeReason.USER_REQUEST,
        at: datetime | None = None,
    ) -> KeyRevoked:
        revoked: KeyRevoked = self._append(KeyRevoked, at, key_id=key_id, reason=reason)
        return revoked

    def delete(self, key_id: str, at: datetime | None = None) -> KeyDeleted:
        deleted: KeyDeleted = self._append(KeyDeleted, at, key_id=key_id)
        return deleted

    def set_allow_list(
        self, key_id: str, cidrs: tuple[str, ...], at: datetime | None = None
    ) -> KeyAllowListChanged:
        changed: KeyAllowListChanged = self._append(
            KeyAllowListChanged, at, key_id=key_id, allowed_cidrs=cidrs
        )
        return changed

    def roll(
        self, key_id: str, new_key_id: str, overlap: timedelta, at: datetime | None = None
    ) -> KeyRolled:
        """`key_id` replaced by `new_key_id` (its secret kept in `secrets`), the old key
        expiring `overlap` after the roll."""
        key_type = self.key_types[key_id]
        secret = generate_secret(key_type.value)
        self.key_types[new_key_id] = key_type
        self.secrets[new_key_id] = secret
        when = at or datetime.now(UTC)
        rolled: KeyRolled = self._append(
            KeyRolled,
            when,
            key_id=key_id,
            new_key_id=new_key_id,
            secret_hash=hash_secret(secret),
            hint=hint(secret),
            old_expires_at=when + overlap,
        )
        return rolled

    def change_plan(self, plan: Plan, at: datetime | None = None) -> PlanChanged:
        changed: PlanChanged = self._append(PlanChanged, at, plan=plan, previous=self.plan)
        self.plan = plan
        return changed


def publish(bootstrap_servers: str, topic: str, events: Iterable[KeyEventModel]) -> None:
    """Append `events` in order and wait until the broker has every one."""
    with KeyEventPublisher(PublisherConfig(bootstrap_servers, topic)) as publisher:
        pending = [publisher.publish(e, wait=False) for e in events]
        for future in pending:
            future.result(30)
