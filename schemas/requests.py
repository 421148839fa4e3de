"""Request events: one `RequestCompleted` per API call, packed into `RequestBatch` records;
verification outcomes (`OutcomeRecorded`, packed into `OutcomeBatch` records) ride on the
same topic.

Every bound comes from `schemas.request_bounds`; every field rule is a `schemas.wire_types`
rule, the one the worker's column validator (`schemas.request_columns`) also runs.
`bytes_out`, `is_render` and `watermarked` may be left out of a single event (0, false,
false); every column of a batch is required.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.base import Event, EventId
from schemas.ids import EVENT_ID_TEXT, AccountId, KeyId
from schemas.request_bounds import (
    MAX_BATCH_EVENTS,
    MAX_BYTES_OUT,
    MAX_LATENCY_MS,
    MAX_OCCURRED_MS,
    MAX_ROUTE_LENGTH,
    MAX_STATUS,
    MIN_BYTES_OUT,
    MIN_LATENCY_MS,
    MIN_OCCURRED_MS,
    MIN_ROUTE_LENGTH,
    MIN_STATUS,
    HttpMethod,
)
from schemas.utc import from_epoch_ms, to_epoch_ms
from schemas.uuid7 import uuid7
from schemas.wire_types import Flag, IpAddress, JsonInteger, JsonNumber, Matching, Route

ROUTE = Route(MIN_ROUTE_LENGTH, MAX_ROUTE_LENGTH)
STATUS = JsonInteger(MIN_STATUS, MAX_STATUS)
LATENCY_MS = JsonNumber(MIN_LATENCY_MS, MAX_LATENCY_MS)
BYTES_OUT = JsonInteger(MIN_BYTES_OUT, MAX_BYTES_OUT)
CLIENT_IP = IpAddress()
OCCURRED_AT_MS = JsonInteger(MIN_OCCURRED_MS, MAX_OCCURRED_MS)
FLAG = Flag()

RouteText = Annotated[str, ROUTE]
Status = Annotated[int, STATUS]
LatencyMs = Annotated[float, LATENCY_MS]
BytesOut = Annotated[int, BYTES_OUT]
ClientIp = Annotated[IPv4Address | IPv6Address, CLIENT_IP]
OccurredAtMs = Annotated[int, OCCURRED_AT_MS]
CanonicalUuidText = Annotated[str, EVENT_ID_TEXT]
Bool = Annotated[bool, FLAG]


class RequestCompleted(Event):
    """One API call made with a key, after the response was sent."""

    type: Literal["request.completed"] = "request.completed"
    key_id: KeyId
    account_id: AccountId
    method: HttpMethod
    route: RouteText
    status: Status
    latency_ms: LatencyMs
    client_ip: ClientIp
    bytes_out: BytesOut = 0
    is_render: Bool = False
    watermarked: Bool = False


MAX_OUTCOME_COUNT = 4_294_967_295
"""The largest `count` of one outcome event (a UInt32 in ClickHouse)."""

Column = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class RequestColumns(BaseModel):
    """The columnar body of a batch: one list per field, all of one length (a rule JSON
    Schema cannot state; the decoder holds a batch whose columns differ to be broken)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={"description": "Columns of one length, 1..100000 rows."},
    )

    event_id: Annotated[list[CanonicalUuidText], Column]
    occurred_at_ms: Annotated[list[OccurredAtMs], Column]
    key_id: Annotated[list[KeyId], Column]
    account_id: Annotated[list[AccountId], Column]
    method: Annotated[list[HttpMethod], Column]
    route: Annotated[list[RouteText], Column]
    status: Annotated[list[Status], Column]
    latency_ms: Annotated[list[LatencyMs], Column]
    client_ip: Annotated[list[ClientIp], Column]
    bytes_out: Annotated[list[BytesOut], Column]
    is_render: Annotated[list[Bool], Column]
    watermarked: Annotated[list[Bool], Column]

    @model_validator(mode="after")
    def _same_length(self) -> RequestColumns:
        lengths = {name: len(getattr(self, name)) for name in type(self).model_fields}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns differ in length: {lengths}")
        return self


class RequestBatch(Event):
    """Many request events in one Kafka record (what the producer library sends).

    The body is columnar (`RequestColumns`); `schemas.request_columns.check_columns` is
    the fast validator the ingest path uses for it.
    """

    WIRE_REQUIRED: ClassVar[tuple[str, ...]] = (*Event.WIRE_REQUIRED, "batch_id")

    type: Literal["request.batch"] = "request.batch"
    batch_id: EventId = Field(default_factory=uuid7)
    columns: RequestColumns

    @classmethod
    def from_events(cls, events: list[RequestCompleted]) -> RequestBatch:
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, got {len(events)}")
        cols = RequestColumns(
            event_id=[str(e.event_id) for e in events],
            occurred_at_ms=[to_epoch_ms(e.occurred_at) for e in events],
            key_id=[e.key_id for e in events],
            account_id=[e.account_id for e in events],
            method=[e.method for e in events],
            route=[e.route for e in events],
            status=[e.status for e in events],
            latency_ms=[e.latency_ms for e in events],
            client_ip=[e.client_ip for e in events],
            bytes_out=[e.bytes_out for e in events],
            is_render=[e.is_render for e in events],
            watermarked=[e.watermarked for e in events],
        )
        return cls(columns=cols)

    def events(self) -> list[RequestCompleted]:
        c = self.columns
        return [
            RequestCompleted(
                event_id=UUID(c.event_id[i]),
                occurred_at=from_epoch_ms(c.occurred_at_ms[i]),
                key_id=c.key_id[i],
                account_id=c.account_id[i],
                method=c.method[i],
                route=c.route[i],
                status=c.status[i],
                latency_ms=c.latency_ms[i],
                client_ip=c.client_ip[i],
                bytes_out=c.bytes_out[i],
                is_render=c.is_render[i],
                watermarked=c.watermarked[i],
            )
            for i in range(len(c.event_id))
        ]


class VerificationOutcome(StrEnum):
    """What a key verification answered (`streams.client.verifier`'s verdicts)."""

    VALID = "valid"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    DELETED = "deleted"
    EXPIRED = "expired"
    IP_NOT_ALLOWED = "ip_not_allowed"
    QUOTA_EXCEEDED = "quota_exceeded"


OUTCOMES: frozenset[str] = frozenset(o.value for o in VerificationOutcome)
KEYLESS_OUTCOMES: frozenset[str] = frozenset(
    (VerificationOutcome.MALFORMED.value, VerificationOutcome.UNKNOWN.value)
)
"""Verdicts on a string that names no key: their rows carry no key or account, and may
carry the string's `presented_digest` instead."""
OUTCOME_COUNT = JsonInteger(1, MAX_OUTCOME_COUNT)
OutcomeCount = Annotated[int, OUTCOME_COUNT]
DIGEST_HEX_CHARS = 16
PRESENTED_DIGEST = Matching(rf"^[0-9a-f]{{{DIGEST_HEX_CHARS}}}$")
PresentedDigest = Annotated[str, PRESENTED_DIGEST]


def presented_digest(presented: str) -> str:
    """A short digest of a presented string that names no key (a `malformed` or `unknown`
    verdict): the first 16 hex digits (64 bits) of its SHA-256, never the string itself.

    It lets a reader count the distinct bad strings one client presents (credential
    stuffing) without storing them. An unkeyed hash is enough: these strings are not
    valid keys, so there is no secret behind them to protect. (Even a real secret
    verified before the verifier saw its key would give away only 64 bits of the SHA-256
    that the key registry stores whole as `secret_hash`; the secrets themselves are
    random, far beyond guessing from a hash.)
    """
    return hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_HEX_CHARS]


class OutcomeRecorded(Event):
    """Verifications of one outcome: a single non-valid verdict (`count` 1, its time), or
    the valid verdicts of one key within one UTC minute (`count` of them since the
    previous event of that key and minute, `occurred_at` and `client_ip` of the newest).

    Never the presented secret: `key_id` and `account_id` only when the key was found
    (absent for `malformed` and `unknown`); `client_ip` when the caller passed one;
    `presented_digest` (optional, added later: records without it decode as before) only
    for `malformed` and `unknown`, the `presented_digest()` of the string, so distinct
    bad strings can be counted.
    """

    type: Literal["verification.outcome"] = "verification.outcome"
    outcome: VerificationOutcome
    key_id: KeyId | None = None
    account_id: AccountId | None = None
    client_ip: ClientIp | None = None
    count: OutcomeCount = 1
    presented_digest: PresentedDigest | None = None


class OutcomeColumns(BaseModel):
    """The columnar body of an `OutcomeBatch`: one list per field, all of one length;
    `null` where a row has no key, account, client IP or digest. `presented_digest` is the
    one column a batch may leave out (batches written before it existed): all null."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={"description": "Columns of one length, 1..100000 rows."},
    )

    event_id: Annotated[list[CanonicalUuidText], Column]
    occurred_at_ms: Annotated[list[OccurredAtMs], Column]
    outcome: Annotated[list[VerificationOutcome], Column]
    key_id: Annotated[list[KeyId | None], Column]
    account_id: Annotated[list[AccountId | None], Column]
    client_ip: Annotated[list[ClientIp | None], Column]
    count: Annotated[list[OutcomeCount], Column]
    presented_digest: Annotated[list[PresentedDigest | None], Column] | None = None

    @model_validator(mode="after")
    def _same_length(self) -> OutcomeColumns:
        lengths = {
            name: len(getattr(self, name))
            for name in type(self).model_fields
            if getattr(self, name) is not None
        }
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns differ in length: {lengths}")
        return self


class OutcomeBatch(Event):
    """Many `verification.outcome` events in one `keypulse.requests` record, columnar like
    a `RequestBatch` (what `streams.client.outcome_recorder.OutcomeRecorder` sends)."""

    WIRE_REQUIRED: ClassVar[tuple[str, ...]] = (*Event.WIRE_REQUIRED, "batch_id")

    type: Literal["verification.batch"] = "verification.batch"
    batch_id: EventId = Field(default_factory=uuid7)
    columns: OutcomeColumns

    @classmethod
    def from_events(cls, events: list[OutcomeRecorded]) -> OutcomeBatch:
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, got {len(events)}")
        cols = OutcomeColumns(
            event_id=[str(e.event_id) for e in events],
            occurred_at_ms=[to_epoch_ms(e.occurred_at) for e in events],
            outcome=[e.outcome for e in events],
            key_id=[e.key_id for e in events],
            account_id=[e.account_id for e in events],
            client_ip=[e.client_ip for e in events],
            count=[e.count for e in events],
            presented_digest=[e.presented_digest for e in events],
        )
        return cls(columns=cols)

    def events(self) -> list[OutcomeRecorded]:
        c = self.columns
        digests = c.presented_digest or [None] * len(c.event_id)
        return [
            OutcomeRecorded(
                event_id=UUID(c.event_id[i]),
                occurred_at=from_epoch_ms(c.occurred_at_ms[i]),
                outcome=c.outcome[i],
                key_id=c.key_id[i],
                account_id=c.account_id[i],
                client_ip=c.client_ip[i],
                count=c.count[i],
                presented_digest=digests[i],
            )
            for i in range(len(c.event_id))
        ]
