"""Failed authentications per source address: slowed, then refused for a while (pure:
every decision takes `now`, in seconds of a monotonic clock; no I/O).

A source is one IPv4 address, or the /64 of an IPv6 address (one host usually holds a
whole /64, so counting single IPv6 addresses would let it rotate through 2^64 of them).
Each source keeps the times of its recent failures (at most `before_block` of them):

- up to `before_delay` failures within `window_s`: answered at once;
- past that, each failing answer waits `delay_step_s` more than the last, at most
  `max_delay_s` (`failed` returns the wait; the caller sleeps without blocking);
- the `before_block`-th failure within `window_s` blocks the source for `block_s`:
  `blocked` returns a `Refusal` with the whole seconds left (`Retry-After`) until then,
  and its history starts afresh when the block ends.

Only failures count and a success resets nothing, not even its own source's history:
otherwise an attacker holding one valid key (of their own account) could interleave it
to keep guessing other keys. Limits are by source, never by account or key, so an
attacker cannot lock an account's valid keys out of other addresses. At most
`max_sources` sources are remembered: the least recently failing one is forgotten
first, so many addresses cannot grow the memory without bound (forgetting a source
only ever lets it try again sooner, never refuses anyone).

Blocks are kept apart from the failure histories, so that `blocking` (is any source
blocked?) is one lookup: a success pays nothing more while nobody is blocked. The tracker
takes a lock so that it stays correct if a sync route ever calls it from the thread pool.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

__all__ = ["FailureLimits", "FailureTracker", "Refusal", "source_of"]

MAX_SOURCE_CHARS = 100


@dataclass(frozen=True)
class FailureLimits:
    before_delay: int = 5
    before_block: int = 20
    window_s: float = 300.0
    block_s: float = 900.0
    delay_step_s: float = 0.25
    max_delay_s: float = 2.0
    max_sources: int = 20_000


@dataclass(frozen=True)
class Refusal:
    """The source is blocked: refuse it for `retry_after_s` whole seconds (at least 1)."""

    retry_after_s: int


def source_of(address: str | None) -> str:
    """The tracked source of a client address: an IPv4 address (an IPv4-mapped IPv6
    address counts as its IPv4 address), an IPv6 address's /64, or, for what is no IP
    address (a test client's name, a Unix socket), the text itself (cut short)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address[:MAX_SOURCE_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureTracker:
    """Recent failures per source within `limits` (see the module's docstring)."""

    def __init__(self, limits: FailureLimits) -> None:
        self.limits = limits
        self._sources: OrderedDict[str, deque[float]] = OrderedDict()
        """Recent failure times per source, least recently failing first."""
        self._blocks: dict[str, float] = {}
        """Blocked sources and when their block ends."""
        self._lock = threading.Lock()

    @property
    def blocking(self) -> bool:
        """Whether any source is blocked (or was, until `blocked` looks at it again)."""
        return bool(self._blocks)

    def __len__(self) -> int:
        return len(self._sources)

    def blocked(self, source: str, now: float) -> Refusal | None:
        """A `Refusal` while `source` is blocked; None when it may try (an ended block
        is forgotten, and the source starts afresh)."""
        with self._lock:
            until = self._blocks.get(source)
            if until is None:
                return None
            if now >= until:
                del self._blocks[source]
                self._sources.pop(source, None)
                return None
            return Refusal(max(1, math.ceil(until - now)))

    def failed(self, source: str, now: float) -> float:
        """Count a failure of `source` at `now`; the seconds its answer waits (0: none).
        The `before_block`-th failure within the window starts the block (its own answer
        still goes out: the key it presented was checked)."""
        limits = self.limits
        with self._lock:
            recent = self._sources.pop(source, None) or deque()
            self._sources[source] = recent  # most recently failing last
            while len(self._sources) > limits.max_sources:
                forgotten, _ = self._sources.popitem(last=False)
                self._blocks.pop(forgotten, None)
            while recent and recent[0] <= now - limits.window_s:
                recent.popleft()
            recent.append(now)
            count = len(recent)
            if count >= limits.before_block:
                self._blocks[source] = now + limits.block_s
                recent.clear()
            over = count - limits.before_delay
            return 0.0 if over <= 0 else min(limits.delay_step_s * over, limits.max_delay_s)
