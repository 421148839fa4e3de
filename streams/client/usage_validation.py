"""The slow, thorough half of `UsageRecorder.record()` validation.

`record()` first runs a branch-free fast check (cache hits and inline type/range tests).
Only when that fails does it call `RowValidator.normalize`, which checks every field in
order, raises `ValueError` naming the first bad field, remembers good ids and addresses in
bounded caches, and returns the values as they must be queued (an `IntEnum` status such as
`http.HTTPStatus.OK` or an integer-valued float such as `200.0` becomes a plain `int`, an
`http.HTTPMethod` a plain `str`). The rules are those of `schemas.request_bounds`, the
same as the worker's `schemas.request_columns.check_columns`, so a row accepted here
passes the consumer's validator, and a row rejected here would be dead-lettered there.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.request_bounds import (
    HTTP_METHODS,
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
    is_json_number,
    json_integer,
    valid_ip,
    valid_route,
)
from schemas.utc import now_ms, to_epoch_ms

CACHE_LIMIT = 100_000

_KEY = re.compile(KEY_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
_METHODS = {m: m for m in HTTP_METHODS}  # a str subclass (http.HTTPMethod) -> plain str

Fields = tuple[str, str, str, str, int, float | int, str, int, bool, bool]


def _bad(field: str, detail: str, value: object) -> ValueError:
    return ValueError(f"{field}: {detail}, got {value!r}"[:300])


def _integer(field: str, value: object, lo: int, hi: int) -> int:
    number = json_integer(value)
    if number is None or not lo <= number <= hi:
        raise _bad(field, f"expected an integer in [{lo}, {hi}]", value)
    return number


def occurred_at_ms(value: object) -> int:
    """Epoch milliseconds from `None` (now), an aware `datetime` or epoch ms (an integer,
    or an integer-valued float)."""
    if value is None:
        return now_ms()
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _bad("occurred_at", "expected a timezone-aware datetime", value)
        ms: int | None = to_epoch_ms(value)
    else:
        ms = json_integer(value)
    if ms is None:
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
        if not isinstance(method, str) or method not in _METHODS:
            raise _bad("method", f"expected one of {sorted(HTTP_METHODS)}", method)
        if type(route) is not str or not valid_route(route):
            raise _bad(
                "route",
                f"expected a string of {MIN_ROUTE_LENGTH}..{MAX_ROUTE_LENGTH} characters "
                "(no lone surrogates)",
                route,
            )
        status = _integer("status", status, MIN_STATUS, MAX_STATUS)
        if not is_json_number(latency_ms) or not MIN_LATENCY_MS <= latency_ms <= MAX_LATENCY_MS:
            raise _bad(
                "latency_ms",
                f"expected a number in [{MIN_LATENCY_MS}, {MAX_LATENCY_MS}]",
                latency_ms,
            )
        if type(client_ip) is not str or not valid_ip(client_ip):
            raise _bad(
                "client_ip", "expected an IPv4 or IPv6 address string (no zone id)", client_ip
            )
        self._remember(self.ips, client_ip)
        bytes_out = _integer("bytes_out", bytes_out, MIN_BYTES_OUT, MAX_BYTES_OUT)
        if type(is_render) is not bool:
            raise _bad("is_render", "expected a bool", is_render)
        if type(watermarked) is not bool:
            raise _bad("watermarked", "expected a bool", watermarked)
        latency: float | int = latency_ms if type(latency_ms) in (int, float) else float(latency_ms)
        return (
            key_id,
            account_id,
            _METHODS[method],
            route,
            status,
            latency,
            client_ip,
            bytes_out,
            is_render,
            watermarked,
        )
