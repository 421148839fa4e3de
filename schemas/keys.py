"""Key lifecycle events: created, renamed, revoked, deleted (one discriminated union).

On the wire every field is required (`schemas.base.Event.wire_required`) except `actor`
("system"), `access` ("full") and a revocation's `reason` ("user_request").
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, Strict, TypeAdapter

from schemas.base import Event
from schemas.ids import AccountId, KeyId
from schemas.plans import Plan
from schemas.wire_types import Matching


class KeyType(StrEnum):
    LIVE = "live"
    TEST = "test"


class KeyAccess(StrEnum):
    FULL = "full"
    READ_ONLY = "read_only"


class RevokeReason(StrEnum):
    USER_REQUEST = "user_request"
    COMPROMISED = "compromised"
    PLAN_DOWNGRADE = "plan_downgrade"
    ADMIN = "admin"
    OTHER = "other"


SECRET_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"

Name = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
Actor = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
SecretHash = Annotated[str, Matching(SECRET_HASH_PATTERN)]


class _KeyEventBase(Event):
    key_id: KeyId
    account_id: AccountId
    actor: Actor = "system"


class KeyCreated(_KeyEventBase):
    type: Literal["key.created"] = "key.created"
    name: Name
    key_type: KeyType
    access: KeyAccess = KeyAccess.FULL
    secret_hash: SecretHash
    plan: Plan


class KeyRenamed(_KeyEventBase):
    type: Literal["key.renamed"] = "key.renamed"
    name: Name


class KeyRevoked(_KeyEventBase):
    type: Literal["key.revoked"] = "key.revoked"
    reason: RevokeReason = RevokeReason.USER_REQUEST


class KeyDeleted(_KeyEventBase):
    type: Literal["key.deleted"] = "key.deleted"


KeyEvent = Annotated[KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted, Field(discriminator="type")]
KEY_EVENT_ADAPTER: TypeAdapter[KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted] = TypeAdapter(
    KeyEvent
)
KEY_EVENT_TYPES = ("key.created", "key.renamed", "key.revoked", "key.deleted")
