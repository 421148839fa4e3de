"""The slow, thorough half of `UsageRecorder.record()` validation.

`record()` first runs a branch-free fast check (cache hits and inline type/range tests).
Only when that fails does it call `RowValidator.normalize`, which checks every field in
order, raises `ValueError` naming the first bad field, remembers good ids and addresses in
bounded caches, and returns the values as they must be queued (an `IntEnum` status becomes
a plain `int`). The rules are those of `schemas.request_columns.validate_columns`, so a
row accepted here always passes the consumer's validator.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import time
from datetime import datetime
from typing import Any

from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.requests import HTTP_METHODS, MAX_ROUTE_LENGTH

MAX_LATENCY_MS = 3_600_000
MAX_BYTES_OUT = 2**63 - 1
MIN_OCCURRED_MS = 946_684_800_000  # 2000-01-01
MAX_OCCURRED_MS = 4_102_444_800_000  # 2100-01-01
CACHE_LIMIT = 100_000

_KEY = re.compile(KEY_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)

Fields = tuple[str, str, str, str, int, float | int, str, int, bool, bool]


def valid_ip(value: str) -> bool:
    """What `ipaddress.ip_address` accepts; canonical IPv4 takes a C fast path."""
    try:
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return True
    except (OSError, ValueError):
        pass
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _bad(field: str, detail: str, value: object) -> ValueError:
    return ValueError(f"{field}: {detail}, got {value!r}"[:300])


def occurred_at_ms(value: object) -> int:
    """Epoch milliseconds from `None` (now), an aware `datetime` or an int of epoch ms."""
    if value is None:
        return time.time_ns() // 1_000_000
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _bad("occurred_at", "expected a timezone-aware datetime", value)
        ms = math.floor(value.timestamp() * 1000)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = int(value)
    else:
        raise _bad("occurred_at", "expected None, an aware datetime or epoch milliseconds", value)
    if not MIN_OCCURRED_MS <= ms <= MAX_OCCURRED_MS:
        raise _bad("occurred_at", "expected an instant between 2000 and 2100", value)
    return ms


class RowValidator:
    """Full checks of one `record()` call, plus the caches its fast path consults.

    The caches are plain sets read without locks by every recording thread: `in` and
    `add` are atomic under the GIL, and a cache that reaches `CACHE_LIMIT` entries is
    cleared (a later miss only costs one slow check).
    """

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.accounts: set[str] = set()
        self.ips: set[str] = set()

    @staticmethod
    def _remember(cache: set[str], value: str) -> None:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache.add(value)

    def _id(self, field: str, value: Any, pattern: re.Pattern[str], cache: set[str]) -> str:
        if type(value) is not str or pattern.fullmatch(value) is None:
            raise _bad(field, f"expected a string matching {pattern.pattern}", value)
        self._remember(cache, value)
        return value

    def normalize(
        self,
        key_id: Any,
        account_id: Any,
        method: Any,
        route: Any,
        status: Any,
        latency_ms: Any,
        client_ip: Any,
        bytes_out: Any,
        is_render: Any,
        watermarked: Any,
    ) -> Fields:
        """Return the fields as they are queued, or raise `ValueError` naming the bad one."""
        key_id = self._id("key_id", key_id, _KEY, self.keys)
        account_id = self._id("account_id", account_id, _ACCOUNT, self.accounts)
        if type(method) is not str or method not in HTTP_METHODS:
            raise _bad("method", f"expected one of {sorted(HTTP_METHODS)}", method)
        if type(route) is not str or not 1 <= len(route) <= MAX_ROUTE_LENGTH:
            raise _bad("route", f"expected a string of 1..{MAX_ROUTE_LENGTH} characters", route)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise _bad("status", "expected an integer in [100, 599]", status)
        if (
            not isinstance(latency_ms, int | float)
            or isinstance(latency_ms, bool)
            or not 0 <= latency_ms <= MAX_LATENCY_MS
        ):
            raise _bad("latency_ms", f"expected a number in [0, {MAX_LATENCY_MS}]", latency_ms)
        if type(client_ip) is not str or not valid_ip(client_ip):
            raise _bad("client_ip", "expected an IPv4 or IPv6 address string", client_ip)
        self._remember(self.ips, client_ip)
        if (
            not isinstance(bytes_out, int)
            or isinstance(bytes_out, bool)
            or not 0 <= bytes_out <= MAX_BYTES_OUT
        ):
            raise _bad("bytes_out", "expected a non-negative integer", bytes_out)
        if type(is_render) is not bool:
            raise _bad("is_render", "expected a bool", is_render)
        if type(watermarked) is not bool:
            raise _bad("watermarked", "expected a bool", watermarked)
        latency: float | int = latency_ms if type(latency_ms) in (int, float) else float(latency_ms)
        return (
            key_id,
            account_id,
            method,
            route,
            int(status),
            latency,
            client_ip,
            int(bytes_out),
            is_render,
            watermarked,
        )
