"""The key-events topic: account and key lifecycle events (one discriminated union).

Every event belongs to one account and carries the account's sequence number `seq`
(1, 2, 3, …) and `prev`, the `event_id` of the event it follows (None for seq 1). A
reader applies an event only when it is the account's next one (`schemas.key_ledger`), so
a writer that decided on an old state (a stale writer) changes nothing anyone sees.

On the wire every field is required (`schemas.base.Event.wire_required`) except `actor`
("system"), `source_ip` (null), `access` ("full"), `idempotency_key` (null) and a
revocation's `reason` ("user_request").
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal

from pydantic import Field, Strict, TypeAdapter

from schemas.base import Event, EventId
from schemas.ids import AccountId, KeyId
from schemas.plans import Plan
from schemas.wire_types import IpAddress, JsonInteger, Matching


class KeyType(StrEnum):
    LIVE = "live"
    TEST = "test"


class KeyAccess(StrEnum):
    """Least privilege: `full` for the product API, `read_only` for analytics and reads,
    `admin` for key management and alert settings (the management API)."""

    FULL = "full"
    READ_ONLY = "read_only"
    ADMIN = "admin"


class RevokeReason(StrEnum):
    USER_REQUEST = "user_request"
    COMPROMISED = "compromised"
    PLAN_DOWNGRADE = "plan_downgrade"
    ADMIN = "admin"
    ROTATED = "rotated"
    OTHER = "other"


SECRET_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
HINT_PATTERN = r"^pk_(live|test)_[0-9A-Za-z]{4}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
REQUEST_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
MAX_SEQ = 2**53 - 1

Name = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
Actor = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
SecretHash = Annotated[str, Matching(SECRET_HASH_PATTERN)]
Hint = Annotated[str, Matching(HINT_PATTERN)]
IdempotencyKey = Annotated[str, Matching(IDEMPOTENCY_KEY_PATTERN)]
RequestHash = Annotated[str, Matching(REQUEST_HASH_PATTERN)]
Seq = Annotated[int, JsonInteger(1, MAX_SEQ)]
SourceIp = Annotated[IPv4Address | IPv6Address, IpAddress()]


class _AccountEventBase(Event):
    account_id: AccountId
    seq: Seq
    prev: EventId | None
    actor: Actor = "system"
    source_ip: SourceIp | None = None


class AccountCreated(_AccountEventBase):
    type: Literal["account.created"] = "account.created"
    plan: Plan


class PlanChanged(_AccountEventBase):
    type: Literal["account.plan_changed"] = "account.plan_changed"
    plan: Plan
    previous: Plan


class KeyCreated(_AccountEventBase):
    type: Literal["key.created"] = "key.created"
    key_id: KeyId
    name: Name
    key_type: KeyType
    access: KeyAccess = KeyAccess.FULL
    secret_hash: SecretHash
    hint: Hint
    idempotency_key: IdempotencyKey | None = None
    request_hash: RequestHash | None = None


class KeyRenamed(_AccountEventBase):
    type: Literal["key.renamed"] = "key.renamed"
    key_id: KeyId
    name: Name


class KeyRevoked(_AccountEventBase):
    type: Literal["key.revoked"] = "key.revoked"
    key_id: KeyId
    reason: RevokeReason = RevokeReason.USER_REQUEST


class KeyDeleted(_AccountEventBase):
    type: Literal["key.deleted"] = "key.deleted"
    key_id: KeyId


KeyEventModel = AccountCreated | PlanChanged | KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted
KeyLifecycle = KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted
"""The events about one key (each has a `key_id`)."""

KeyEvent = Annotated[KeyEventModel, Field(discriminator="type")]
KEY_EVENT_ADAPTER: TypeAdapter[KeyEventModel] = TypeAdapter(KeyEvent)
KEY_EVENT_TYPES = (
    "account.created",
    "account.plan_changed",
    "key.created",
    "key.renamed",
    "key.revoked",
    "key.deleted",
)
