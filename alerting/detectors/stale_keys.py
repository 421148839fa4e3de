"""The `stale_key_presented` rule kind, pure: a revoked or expired key still presented.

Contracts:

- `observe_stale(rule, key_id, stats, now)` is one key's observation: the number of
  presentations (verdicts `revoked` or `expired`) in the rule's window as the value, and
  the evidence in words and numbers; a key without presentations observes 0 (so a firing
  instance clears and resolves once the key is no longer presented).
- `evidence_text` names the key, says when it was revoked (and why) or expired (and what
  replaced it), how often it was presented in the window, and when and from which client
  IP it was presented last. Times are UTC to the minute; the date is left out of the last
  presentation when it falls on the day of `now`.
- No I/O and no clock: `now` is the evaluation time.
"""

from __future__ import annotations

from datetime import datetime

from alerting.ports import StalePresentations, WindowStats
from alerting.render import (
    format_clock,
    format_duration,
    format_minute,
    format_number,
    key_label,
)
from alerting.state import Observation
from schemas.alerts import AlertRule


def _times(n: int) -> str:
    return "once" if n == 1 else f"{format_number(n)} times"


def key_status(p: StalePresentations) -> str:
    """`revoked 2026-11-30 14:02 UTC (compromised)` or `expired … (replaced by key_…)`."""
    if p.revoked_at is not None:
        reason = f" ({p.revoke_reason})" if p.revoke_reason else ""
        return f"revoked {format_minute(p.revoked_at)}{reason}"
    if p.expires_at is not None:
        replaced = f" (replaced by {p.replaced_by})" if p.replaced_by else ""
        return f"expired {format_minute(p.expires_at)}{replaced}"
    return "revoked" if p.revoked else "expired"


def evidence_text(key_id: str, p: StalePresentations, window_s: int, now: datetime) -> str:
    """E.g. `key_ab12 (Production web), revoked 2026-11-30 14:02 UTC (compromised):
    presented 37 times in the last 15m, last from 198.51.100.7 at 12:03 UTC`."""
    source = f" from {p.last_ip}" if p.last_ip else ""
    mixed = ""
    if p.revoked and p.expired:
        mixed = f" ({format_number(p.revoked)} revoked, {format_number(p.expired)} expired)"
    return (
        f"{key_label(key_id, p.name)}, {key_status(p)}: presented {_times(p.presented)}{mixed} "
        f"in the last {format_duration(window_s)}, last{source} at {format_clock(p.last_at, now)}"
    )


def observe_stale(
    rule: AlertRule, key_id: str, stats: WindowStats | None, now: datetime
) -> Observation:
    """One key's `stale_key_presented` observation at `now` (see the module docstring)."""
    window_s = rule.window_s
    p = stats.stale if stats is not None else None
    if p is None or p.presented <= 0:
        quiet = f"{key_id}: not presented in the last {format_duration(window_s)}"
        return Observation(0.0, sample_count=0, evidence=quiet)
    return Observation(
        float(p.presented),
        sample_count=p.presented,
        evidence=evidence_text(key_id, p, window_s, now),
    )
