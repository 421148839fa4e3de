"""Time-ordered event ids (UUIDv7, RFC 9562): one at a time, or in bulk.

`uuid7()` is one random UUIDv7. `uuid7_block(n, unix_ms)` returns `n` lowercase UUIDv7
strings that share the 48-bit millisecond timestamp, 12 random bits (`rand_a`) and the
top 30 random bits of `rand_b`; the low 32 bits of `rand_b` are a counter starting at a
random value (RFC 9562 section 6.2, fixed-length dedicated counter). Ids sort by time
and, within a block, by position; two blocks collide only if 74 random bits coincide
within one millisecond.
"""

from __future__ import annotations

import os
from uuid import UUID

from schemas.utc import now_ms

_COUNTER_SPAN = 1 << 32
_MAX_BLOCK = 1 << 24


def uuid7_block(n: int, unix_ms: int) -> list[str]:
    """`n` (1..2**24) distinct, ascending UUIDv7 strings stamped with `unix_ms`."""
    if not 1 <= n <= _MAX_BLOCK:
        raise ValueError(f"n must be in 1..{_MAX_BLOCK}, got {n}")
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand & 0xFFF
    high = (rand >> 12) & 0x3FFF_FFFF  # top 30 bits of rand_b
    start = (rand >> 42) % (_COUNTER_SPAN - n)
    ts = f"{unix_ms & 0xFFFF_FFFF_FFFF:012x}"
    variant_word = 0x8000 | (high >> 16)  # variant 0b10 then 14 random bits
    head = f"{ts[:8]}-{ts[8:]}-7{rand_a:03x}-{variant_word:04x}-{high & 0xFFFF:04x}"
    return [f"{head}{c:08x}" for c in range(start, start + n)]


def uuid7(unix_ms: int | None = None) -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then random bits; sorts by time."""
    ms = now_ms() if unix_ms is None else unix_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b
    return UUID(int=value)
