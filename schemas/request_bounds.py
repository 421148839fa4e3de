"""The bounds of one request event, defined once for every validator of it.

Four validators hold request events to these rules: the pydantic models
(`schemas.requests.RequestCompleted` and `RequestColumns`), the exported JSON Schemas made
from them (`schemas.export`), the worker's column validator
(`schemas.request_columns.check_columns`, which the decoder also runs on a single event)
and the library's row validator (`streams.client.usage_validation.RowValidator`, with the
fast path of `UsageRecorder.record`). Tests hold them to each other.

All bounds are inclusive. Numbers follow JSON Schema: an integer field takes an integer
or a number with a zero fraction (`200.0`, normalised to `200`; `json_integer`), a number
field an integer or a float; neither takes a boolean or a string. A route is valid when
`valid_route` says so (its length in characters, and text that JSON can carry). A
`client_ip` is valid exactly when `valid_ip` says so: IPv4 or IPv6 text as
`ipaddress.ip_address` reads it, without an IPv6 zone id (`fe80::1%eth0`). Event times
are those of `schemas.wire_time`; identifier patterns live in `schemas.ids` (the key
events share them).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Literal, get_args

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HTTP_METHODS: frozenset[str] = frozenset(get_args(HttpMethod))

MIN_ROUTE_LENGTH = 1
MAX_ROUTE_LENGTH = 512  # characters (code points)
MIN_STATUS = 100
MAX_STATUS = 599
MIN_LATENCY_MS = 0
MAX_LATENCY_MS = 3_600_000
MIN_BYTES_OUT = 0
MAX_BYTES_OUT = 2**32 - 1  # per event; 4 billion events at the maximum still fit a UInt64 sum
MIN_OCCURRED_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_OCCURRED_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_BATCH_EVENTS = 100_000


def json_integer(value: object) -> int | None:
    """`value` as an `int` when it is a JSON Schema integer, else None.

    An integer is an `int` that is not a `bool` (an `IntEnum` such as `HTTPStatus.OK`
    becomes a plain `int`) or a `float` with a zero fraction (`200.0` -> `200`).
    """
    if type(value) is int:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return None


def is_json_number(value: object) -> bool:
    """True for an `int` or a `float` that is not a `bool` (NaN included: bounds exclude it)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def valid_route(value: str) -> bool:
    """True for 1..512 characters that encode as UTF-8 (no lone surrogates)."""
    if not MIN_ROUTE_LENGTH <= len(value) <= MAX_ROUTE_LENGTH:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_ip(value: str) -> bool:
    """True when `ipaddress.ip_address(value)` accepts `value` (IPv4 or IPv6 text) and it
    carries no IPv6 zone id (`%eth0`).

    Never raises for a `str`; a canonical dotted-quad IPv4 address takes a C fast path.
    """
    try:
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return True
    except (OSError, ValueError):  # not IPv4; ValueError for an embedded NUL
        pass
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
