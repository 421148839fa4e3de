"""The bounds of one request event, defined once for every validator of it.

Three validators hold request events to these rules: the pydantic models
(`schemas.requests.RequestCompleted` and `RequestColumns`), the worker's column validator
(`schemas.request_columns.validate_columns`) and the library's row validator
(`streams.client.usage_validation.RowValidator`, with the fast path of
`UsageRecorder.record`). Tests hold the three to each other.

All bounds are inclusive. A route is valid when `valid_route` says so (its length in
characters, and text that JSON can carry). A `client_ip` is valid exactly when `valid_ip`
says so: what `ipaddress.ip_address`, and so pydantic's `IPv4Address | IPv6Address`,
accepts. Identifier patterns live in `schemas.ids` (the key events share them).
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
MAX_BYTES_OUT = 2**63 - 1  # what an Int64 column holds
MIN_OCCURRED_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_OCCURRED_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_BATCH_EVENTS = 100_000

EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""An event id in batch columns: a UUID in canonical lowercase, hyphenated text form."""


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
    """True when `ipaddress.ip_address(value)` accepts `value` (IPv4 or IPv6 text).

    Never raises for a `str`; a canonical dotted-quad IPv4 address takes a C fast path.
    """
    try:
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return True
    except (OSError, ValueError):  # not IPv4; ValueError for an embedded NUL
        pass
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
