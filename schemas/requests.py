"""Request events: one `RequestCompleted` per API call, packed into `RequestBatch` records.

Every bound comes from `schemas.request_bounds`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer, model_validator

from schemas.base import Event, UtcMillis, now_utc_ms
from schemas.ids import AccountId, KeyId
from schemas.request_bounds import (
    EVENT_ID_PATTERN,
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

Route = Annotated[str, Field(min_length=MIN_ROUTE_LENGTH, max_length=MAX_ROUTE_LENGTH)]
Status = Annotated[int, Field(ge=MIN_STATUS, le=MAX_STATUS)]
LatencyMs = Annotated[float, Field(ge=MIN_LATENCY_MS, le=MAX_LATENCY_MS)]
BytesOut = Annotated[int, Field(ge=MIN_BYTES_OUT, le=MAX_BYTES_OUT)]
ClientIp = IPv4Address | IPv6Address
OccurredAtMs = Annotated[int, Field(ge=MIN_OCCURRED_MS, le=MAX_OCCURRED_MS)]
CanonicalUuid = Annotated[str, Field(pattern=EVENT_ID_PATTERN)]


def _in_event_range(value: UtcMillis) -> UtcMillis:
    if not MIN_OCCURRED_MS <= to_epoch_ms(value) <= MAX_OCCURRED_MS:
        raise ValueError("expected an instant from 2000-01-01 to 2100-01-01 (UTC)")
    return value


class RequestCompleted(Event):
    """One API call made with a key, after the response was sent."""

    type: Literal["request.completed"] = "request.completed"
    key_id: KeyId
    account_id: AccountId
    occurred_at: Annotated[UtcMillis, AfterValidator(_in_event_range)] = Field(
        default_factory=now_utc_ms
    )
    method: HttpMethod
    route: Route
    status: Status
    latency_ms: LatencyMs
    client_ip: ClientIp
    bytes_out: BytesOut = 0
    is_render: bool = False
    watermarked: bool = False

    @field_serializer("client_ip")
    def _ip(self, value: ClientIp) -> str:
        return str(value)


class RequestColumns(BaseModel):
    """The columnar body of a batch: one list per field, all of one length."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Annotated[list[CanonicalUuid], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]
    occurred_at_ms: list[OccurredAtMs]
    key_id: list[KeyId]
    account_id: list[AccountId]
    method: list[HttpMethod]
    route: list[Route]
    status: list[Status]
    latency_ms: list[LatencyMs]
    client_ip: list[ClientIp]
    bytes_out: list[BytesOut]
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
