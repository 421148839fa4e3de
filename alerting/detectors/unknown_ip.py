"""The `unknown_ip` rule kind, pure: requests from an address the key has not used lately.

Contracts of `observe_unknown_ip(rule, key_id, stats, now)`:

- The subjects are client IPs, or with `granularity = prefix` their IPv4 /24 and IPv6 /48
  networks (a new address inside a network the key used is not new); the reader
  (`projections.detector_queries.unknown_ip`) gives the subjects first used within the
  window (`AddressHistory.new`) and how many others the key used within the lookback.
- A subject inside the key's allow-list is never unknown: an address inside one of its
  networks (`schemas.cidr.allows`), a network that shares an address with one of them
  (`schemas.cidr.overlaps`). For networks that is the lenient reading: the verifier lets
  only allowed addresses through, so traffic seen in a network that overlaps the
  allow-list came from its allowed part (unless the allow-list was narrowed since).
- Learning: while the key's history (`history_start`, its first request the rollup
  remembers) is shorter than `MIN_HISTORY` (3 days) at `now`, the observation is learning
  (no alert), so a new key does not alarm on its first addresses.
- Otherwise the value is the number of new subjects, compared with `rule.threshold`
  (default 1; gte); `sample_count` is their requests. A key without stats (the reader
  answers only keys with a new subject) observes 0.
- Evidence: `key_ab12 (Production web): new IP 198.51.100.7, first seen 12:03 UTC (41
  requests); this key used 3 IPs in the last 14d`; several: `3 new IPs: A first seen …
  (n requests), B …, C … and 2 more; …` (at most `SHOWN` named, earliest first). Times are
  UTC to the minute, with the date when it is not `now`'s.
- No I/O and no clock: `now` is the evaluation time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from ipaddress import ip_network
from typing import cast

from alerting.ports import AddressHistory, NewAddress, WindowStats
from alerting.render import (
    counted,
    format_clock,
    format_duration,
    format_minute,
    format_number,
    key_label,
)
from alerting.state import Observation
from schemas.alerts import KIND_DEFAULTS, AlertRule, IpGranularity, RuleKind
from schemas.cidr import Network, allows, compile_networks, overlaps, parse_address
from schemas.utc import as_utc

MIN_HISTORY = timedelta(days=3)
"""A key learns its addresses until its first remembered request is this old."""
SHOWN = 3
"""New subjects named in the evidence; the rest are counted ("and 2 more")."""
DEFAULT_LOOKBACK_S = cast(int, KIND_DEFAULTS[RuleKind.UNKNOWN_IP]["lookback_s"])


def _allowed(networks: tuple[Network, ...], subject: str) -> bool:
    """Whether `subject` (an address or a `/24`, `/48` network) is inside the allow-list."""
    if not networks:
        return False
    if "/" in subject:
        try:
            return overlaps(networks, ip_network(subject, strict=False))
        except ValueError:
            return False
    address = parse_address(subject)
    return address is not None and allows(networks, address)


def unknown_subjects(history: AddressHistory) -> tuple[NewAddress, ...]:
    """The new subjects outside the key's allow-list (an unreadable allow-list entry is
    skipped: the registry holds normalised CIDRs)."""
    networks: list[Network] = []
    for cidr in history.allowed_cidrs:
        try:
            networks.extend(compile_networks([cidr]))
        except ValueError:
            continue
    allowed = tuple(networks)
    return tuple(a for a in history.new if not _allowed(allowed, a.subject))


def _seen(a: NewAddress, now: datetime) -> str:
    return f"first seen {format_clock(a.first_seen, now)} ({counted(a.requests, 'request')})"


def evidence_text(
    key_id: str,
    history: AddressHistory,
    unknown: tuple[NewAddress, ...],
    noun: str,
    lookback_s: int,
    now: datetime,
) -> str:
    """The breach (or clear) in words and numbers; see the module docstring."""
    label = key_label(key_id, history.name)
    used = "no" if history.known == 0 else format_number(history.known)
    known = f"this key used {used} {noun}{'' if history.known == 1 else 's'}"
    tail = f"{known} in the last {format_duration(lookback_s)}"
    if len(unknown) == 1:
        (a,) = unknown
        return f"{label}: new {noun} {a.subject}, {_seen(a, now)}; {tail}"
    shown = ", ".join(f"{a.subject} {_seen(a, now)}" for a in unknown[:SHOWN])
    more = len(unknown) - SHOWN
    if more > 0:
        shown += f" and {format_number(more)} more"
    return f"{label}: {counted(len(unknown), f'new {noun}')}: {shown}; {tail}"


def observe_unknown_ip(
    rule: AlertRule, key_id: str, stats: WindowStats | None, now: datetime
) -> Observation:
    """One key's `unknown_ip` observation at `now` (see the module docstring)."""
    noun = "network" if rule.granularity is IpGranularity.PREFIX else "IP"
    window = format_duration(rule.window_s)
    history = stats.addresses if stats is not None else None
    if history is None:
        return Observation(0.0, evidence=f"{key_id}: no new {noun}s in the last {window}")
    unknown = unknown_subjects(history)
    requests = sum(a.requests for a in unknown)
    label = key_label(key_id, history.name)
    start = history.history_start
    if start is None or as_utc(now) - as_utc(start) < MIN_HISTORY:
        since = f"since {format_minute(start)}" if start is not None else "none yet"
        return Observation(
            float(len(unknown)),
            sample_count=requests,
            learning=True,
            evidence=(
                f"{label}: learning which {noun}s it uses (history {since}; "
                f"{format_duration(int(MIN_HISTORY.total_seconds()))} needed)"
            ),
        )
    if not unknown:
        quiet = f"{label}: no new {noun}s outside its allow-list in the last {window}"
        return Observation(0.0, evidence=quiet)
    lookback_s = rule.lookback_s or DEFAULT_LOOKBACK_S
    return Observation(
        float(len(unknown)),
        sample_count=requests,
        evidence=evidence_text(key_id, history, unknown, noun, lookback_s, now),
    )
