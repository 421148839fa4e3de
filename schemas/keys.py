"""The key-events topic: account and key lifecycle events (one discriminated union).

Every event belongs to one account and carries the account's sequence number `seq`
(1, 2, 3, …) and `prev`, the `event_id` of the event it follows (None for seq 1). A
reader applies an event only when it is the account's next one (`schemas.key_ledger`), so
a writer that decided on an old state (a stale writer) changes nothing anyone sees.

On the wire every field is required (`schemas.base.Event.wire_required`) except `actor`
("system"), `source_ip` (null), `access` ("full"), `idempotency_key` and `request_hash`
(null), a revocation's `reason` ("user_request"), and a create's `allowed_cidrs` ([]:
anywhere) and `expires_at` (null: never).

An allow-list entry is a CIDR string, IPv4 or IPv6 (`CIDR_PATTERN`); the model holds it
normalised (`ipaddress.ip_network(strict=False)`: host bits cleared, IPv6 compressed),
so `10.1.2.3/8` reads as `10.0.0.0/8`. A list holds at most `MAX_ALLOWED_CIDRS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, TypeAdapter
from pydantic.json_schema import JsonSchemaValue

from schemas.base import Event, EventId, UtcMillis
from schemas.ids import AccountId, KeyId
from schemas.plans import Plan
from schemas.wire_types import IpAddress, JsonInteger, Matching, WireRule


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
MAX_ALLOWED_CIDRS = 100

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}"
_H = r"[0-9a-fA-F]{1,4}"
_IPV6 = (
    rf"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}|"
    rf"({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}|"
    rf"{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:)|({_H}:){{6}}{_IPV4}|::(ffff(:0{{1,4}})?:)?{_IPV4}|"
    rf"({_H}:){{1,4}}:{_IPV4})"
)
CIDR_PATTERN = rf"^({_IPV4}/(3[0-2]|[12]?[0-9])|{_IPV6}/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$"
"""An IPv4 or IPv6 network with its prefix length (`10.0.0.0/8`, `2001:db8::/32`)."""
_CIDR = re.compile(CIDR_PATTERN)

Name = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
Actor = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
SecretHash = Annotated[str, Matching(SECRET_HASH_PATTERN)]
Hint = Annotated[str, Matching(HINT_PATTERN)]
IdempotencyKey = Annotated[str, Matching(IDEMPOTENCY_KEY_PATTERN)]
RequestHash = Annotated[str, Matching(REQUEST_HASH_PATTERN)]
Seq = Annotated[int, JsonInteger(1, MAX_SEQ)]
SourceIp = Annotated[IPv4Address | IPv6Address, IpAddress()]


@dataclass(frozen=True)
class CidrList(WireRule):
    """A JSON array of at most `MAX_ALLOWED_CIDRS` `CIDR_PATTERN` strings on the wire; a
    tuple of them normalised by `ip_network(strict=False)` in the model (every text the
    pattern matches is one `ip_network` reads)."""

    @property
    def expected(self) -> str:
        return (
            f"a list of at most {MAX_ALLOWED_CIDRS} IPv4 or IPv6 networks in CIDR notation, "
            'e.g. ["203.0.113.0/24", "2001:db8::/32"]'
        )

    def wire_value(self, value: Any) -> list[str]:
        if not isinstance(value, list | tuple) or len(value) > MAX_ALLOWED_CIDRS:
            raise self.reject(value)
        pattern = _CIDR
        if not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
            raise self.reject(value)
        return list(value)

    def python_value(self, value: Any) -> tuple[str, ...]:
        return tuple(str(ip_network(v, strict=False)) for v in self.wire_value(value))

    def json_schema(self) -> JsonSchemaValue:
        return {
            "type": "array",
            "items": {"type": "string", "pattern": CIDR_PATTERN},
            "maxItems": MAX_ALLOWED_CIDRS,
        }


AllowedCidrs = Annotated[tuple[str, ...], CidrList()]


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
    allowed_cidrs: AllowedCidrs = ()
    """Where the key may be used from (empty: anywhere)."""
    expires_at: UtcMillis | None = None
    """When the key stops working (null: never)."""


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


class KeyAllowListChanged(_AccountEventBase):
    """The key's allow-list replaced as a whole (empty: usable from anywhere)."""

    type: Literal["key.allow_list_changed"] = "key.allow_list_changed"
    key_id: KeyId
    allowed_cidrs: AllowedCidrs


class KeyRolled(_AccountEventBase):
    """`key_id` replaced by a new key `new_key_id` (one event, so no reader ever sees one
    half): the new key copies the old one's name, type, access and allow-list; the old one
    stays valid until `old_expires_at` (the roll's time + the overlap)."""

    type: Literal["key.rolled"] = "key.rolled"
    key_id: KeyId
    new_key_id: KeyId
    secret_hash: SecretHash
    hint: Hint
    old_expires_at: UtcMillis
    idempotency_key: IdempotencyKey | None = None
    request_hash: RequestHash | None = None


KeyEventModel = (
    AccountCreated
    | PlanChanged
    | KeyCreated
    | KeyRenamed
    | KeyRevoked
    | KeyDeleted
    | KeyAllowListChanged
    | KeyRolled
)
KeyLifecycle = KeyCreated | KeyRenamed | KeyRevoked | KeyDeleted | KeyAllowListChanged | KeyRolled
"""The events about one key (each has a `key_id`; a roll's is the old key's)."""

KeyEvent = Annotated[KeyEventModel, Field(discriminator="type")]
KEY_EVENT_ADAPTER: TypeAdapter[KeyEventModel] = TypeAdapter(KeyEvent)
KEY_EVENT_TYPES = (
    "account.created",
    "account.plan_changed",
    "key.created",
    "key.renamed",
    "key.revoked",
    "key.deleted",
    "key.allow_list_changed",
    "key.rolled",
)
