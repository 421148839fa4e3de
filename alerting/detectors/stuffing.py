"""The `credential_stuffing` rule kind, pure: one client IP presenting many distinct
invalid, revoked or expired keys to an account within the window.

Contracts of `observe_stuffing(rule, subject, stats, now)`:

- `subject` is `ip:<address>` (`schemas.alerts.IP_SUBJECT_PREFIX`); the rule is
  account-wide, one instance per client IP.
- The value is the distinct bad keys the IP presented in the window
  (`StuffingSource.distinct_keys`: the account's revoked, expired or deleted keys by id,
  plus the IP's malformed and unknown strings by digest; see
  `projections.detector_queries.stuffing` for the attribution); the sample count is the
  bad presentations. It breaches at `threshold` (default 10) or more: the rule's own
  comparison (gte), no judgement of the detector's own.
- An IP without bad keys in the window (`stats` None) observes 0, so a firing instance
  clears and resolves once the stuffing stops.
- The evidence names the IP, the distinct keys, the presentations per verdict (most
  first) and when, e.g. `IP 203.0.113.9 presented 27 distinct invalid or revoked keys in
  the last 15m (35 attempts: 31 unknown, 4 revoked) between 12:01 and 12:14 UTC`. Times
  are UTC to the minute, with the date when it is not the day of `now`.
- No I/O and no clock: `now` is the evaluation time.
"""

from __future__ import annotations

from datetime import datetime

from alerting.ports import StuffingSource, WindowStats
from alerting.render import counted, format_clock, format_duration, format_number
from alerting.state import Observation
from schemas.alerts import IP_SUBJECT_PREFIX, AlertRule


def address(subject: str) -> str:
    """The client IP of an `ip:<address>` subject (the subject itself otherwise)."""
    return subject.removeprefix(IP_SUBJECT_PREFIX)


def _when(source: StuffingSource, now: datetime) -> str:
    first = format_clock(source.first_at, now, zone=False)
    last = format_clock(source.last_at, now, zone=False)
    return f"at {first} UTC" if first == last else f"between {first} and {last} UTC"


def evidence_text(subject: str, source: StuffingSource, window_s: int, now: datetime) -> str:
    """E.g. `IP 203.0.113.9 presented 27 distinct invalid or revoked keys in the last 15m
    (35 attempts: 31 unknown, 4 revoked) between 12:01 and 12:14 UTC`."""
    per = sorted(source.outcomes, key=lambda o: (-o[1], o[0]))
    verdicts = ", ".join(f"{format_number(n)} {outcome}" for outcome, n in per)
    attempts = counted(source.attempts, "attempt")
    keys = counted(source.distinct_keys, "distinct invalid or revoked key")
    return (
        f"IP {address(subject)} presented {keys} in the last "
        f"{format_duration(window_s)} ({attempts}: {verdicts}) {_when(source, now)}"
    )


def observe_stuffing(
    rule: AlertRule, subject: str, stats: WindowStats | None, now: datetime
) -> Observation:
    """One client IP's `credential_stuffing` observation at `now` (see the module)."""
    source = stats.stuffing if stats is not None else None
    if source is None or source.distinct_keys <= 0:
        quiet = (
            f"IP {address(subject)}: no invalid or revoked keys presented in the last "
            f"{format_duration(rule.window_s)}"
        )
        return Observation(0.0, sample_count=0, evidence=quiet)
    return Observation(
        float(source.distinct_keys),
        sample_count=source.attempts,
        evidence=evidence_text(subject, source, rule.window_s, now),
    )
