"""Request events: one `RequestCompleted` per API call, packed into `RequestBatch` records."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from schemas.base import Event
from schemas.ids import AccountId, KeyId
from schemas.uuid7 import uuid7

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HTTP_METHODS: frozenset[str] = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
)
MAX_ROUTE_LENGTH = 512
MAX_BATCH_EVENTS = 100_000


class RequestCompleted(Event):
    """One API call made with a key, after the response was sent."""

    type: Literal["request.completed"] = "request.completed"
    key_id: KeyId
    account_id: AccountId
    method: HttpMethod
    route: Annotated[str, Field(min_length=1, max_length=MAX_ROUTE_LENGTH)]
    status: Annotated[int, Field(ge=100, le=599)]
    latency_ms: Annotated[float, Field(ge=0, le=3_600_000)]
    client_ip: IPv4Address | IPv6Address
    bytes_out: Annotated[int, Field(ge=0)] = 0
    is_render: bool = False
    watermarked: bool = False

    @field_serializer("client_ip")
    def _ip(self, value: IPv4Address | IPv6Address) -> str:
        return str(value)


CanonicalUuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
"""A UUID in its canonical lowercase, hyphenated text form (as batches carry it)."""


class RequestColumns(BaseModel):
    """The columnar body of a batch: one list per field, all of one length."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Annotated[list[CanonicalUuid], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]
    occurred_at_ms: list[Annotated[int, Field(ge=946_684_800_000, le=4_102_444_800_000)]]
    key_id: list[KeyId]
    account_id: list[AccountId]
    method: list[HttpMethod]
    route: list[Annotated[str, Field(min_length=1, max_length=MAX_ROUTE_LENGTH)]]
    status: list[Annotated[int, Field(ge=100, le=599)]]
    latency_ms: list[Annotated[float, Field(ge=0, le=3_600_000)]]
    client_ip: list[IPv4Address | IPv6Address]
    bytes_out: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]
    is_render: list[bool]
    watermarked: list[bool]

    @model_validator(mode="after")
    def _same_length(self) -> RequestColumns:
        lengths = {name: len(getattr(self, name)) for name in type(self).model_fields}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns differ in length: {lengths}")
        return self


class RequestBatch(Event):
    """Many request events in one Kafka record (what the producer library sends).

    The body is columnar (`RequestColumns`); `schemas.request_columns.validate_columns`
    is the fast validator the ingest path uses for it.
    """

    type: Literal["request.batch"] = "request.batch"
    batch_id: UUID = Field(default_factory=uuid7)
    columns: RequestColumns

    @classmethod
    def from_events(cls, events: list[RequestCompleted]) -> RequestBatch:
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, got {len(events)}")
        cols = RequestColumns(
            event_id=[str(e.event_id) for e in events],
            occurred_at_ms=[int(e.occurred_at.timestamp() * 1000) for e in events],
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
                occurred_at=datetime.fromtimestamp(c.occurred_at_ms[i] / 1000, UTC),
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
