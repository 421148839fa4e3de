"""`OutcomeRecorder`: the verifier's outcome sink; verification outcomes to Kafka as events.

`record(outcome, key_id, account_id, client_ip, at, presented_digest=None)` is called once
per verdict on the API's hot path: it appends one tuple to a bounded `deque` and returns
(no lock, no validation, never raises; a full queue drops and counts). The recorder's
worker thread (`streams.client.recorder_worker`, the usage recorder's: the same batching,
spill and idempotent acks=all delivery, every event with its own id) drains that queue on
each loop through `OutcomeAggregator`:

- a verdict that is not `valid` becomes one `verification.outcome` row (count 1): its
  outcome, key and account when the key was found, client IP and time, and for
  `malformed` and `unknown` the presented string's digest when the verifier gave one
  (`schemas.requests.presented_digest`: 16 hex digits of its SHA-256; dropped for any
  other outcome, whose key names it);
- `valid` verdicts are counted per (key, UTC minute) (`MinuteCounts`) and sent as one row
  per key and minute with the count, the newest time and the last client IP seen. A
  count is sent `count_flush_ms` after its first verdict (default 2 s, so "last used" is
  fresh within seconds), at the end of its minute, or on flush/close, whichever comes
  first; verdicts of that minute after it was sent start a new count (the table sums
  them), so a key and minute is one event when `count_flush_ms` >= 60,000.

Rows are packed into `verification.batch` records on the requests topic
(`batch_packer.pack_outcomes`). The presented string is never given to the sink (only
the digest of one that names no key), so no secret is ever held or sent. `stats()` counts
events (a valid count is one event); verdicts dropped (queue full, after close, or
refused by the checks) count as dropped.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemas.ids import ACCOUNT_ID_PATTERN, KEY_ID_PATTERN
from schemas.request_bounds import MAX_OCCURRED_MS, MIN_OCCURRED_MS, valid_ip
from schemas.requests import KEYLESS_OUTCOMES, OUTCOMES, PRESENTED_DIGEST, VerificationOutcome
from schemas.utc import now_ms, to_epoch_ms
from streams.client.batch_packer import OutcomeRow, pack_outcomes
from streams.client.recorder_config import RecorderConfig, RecorderStats
from streams.client.usage_recorder import BufferedRecorder

log = logging.getLogger("streams.client")

MINUTE_MS = 60_000
DEFAULT_COUNT_FLUSH_MS = 2_000
VALID = VerificationOutcome.VALID.value
_KEY = re.compile(KEY_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_ID_PATTERN)
_DIGEST = re.compile(PRESENTED_DIGEST.pattern)

Verdict = tuple[Any, Any, Any, Any, Any, Any]
"""(outcome, key_id, account_id, client_ip, at, presented_digest) as `record()` queued
them, unchecked."""
CheckedVerdict = tuple[str, str | None, str | None, str | None, int, str | None]
"""(outcome, key_id, account_id, client_ip, at_ms, presented_digest), as rows carry them."""


@dataclass(slots=True)
class _Count:
    account_id: str
    count: int
    last_ms: int
    last_ip: str | None
    since_ms: int
    """When (the aggregator's clock) the first verdict of this count was added."""


class MinuteCounts:
    """Valid verdicts counted per (key, UTC minute); pure: every call takes `now_ms`."""

    def __init__(self, flush_after_ms: int = DEFAULT_COUNT_FLUSH_MS) -> None:
        if flush_after_ms < 0:
            raise ValueError(f"count_flush_ms: expected >= 0, got {flush_after_ms}")
        self.flush_after_ms = flush_after_ms
        self._counts: dict[tuple[str, int], _Count] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add(
        self, key_id: str, account_id: str, client_ip: str | None, at_ms: int, now_ms: int
    ) -> None:
        """Count one valid verdict of `key_id` at `at_ms` (epoch ms)."""
        slot = (key_id, at_ms // MINUTE_MS)
        entry = self._counts.get(slot)
        if entry is None:
            self._counts[slot] = _Count(account_id, 1, at_ms, client_ip, now_ms)
            return
        entry.count += 1
        if at_ms >= entry.last_ms:
            entry.last_ms = at_ms
            if client_ip is not None:
                entry.last_ip = client_ip
        elif entry.last_ip is None:
            entry.last_ip = client_ip

    def due(self, now_ms: int, force: bool = False) -> list[OutcomeRow]:
        """The counts to send now (all of them with `force`), removed from the pending
        ones: those `flush_after_ms` old, and those of a minute that has ended."""
        out: list[OutcomeRow] = []
        for slot, entry in list(self._counts.items()):
            key_id, minute = slot
            if (
                force
                or now_ms - entry.since_ms >= self.flush_after_ms
                or now_ms >= (minute + 1) * MINUTE_MS
            ):
                del self._counts[slot]
                out.append(
                    (
                        entry.last_ms,
                        VALID,
                        key_id,
                        entry.account_id,
                        entry.last_ip,
                        entry.count,
                        None,
                    )
                )
        return out


def _at_ms(at: Any) -> int | None:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        return None
    ms = to_epoch_ms(at)
    return ms if MIN_OCCURRED_MS <= ms <= MAX_OCCURRED_MS else None


def check_verdict(verdict: Verdict) -> CheckedVerdict | str:
    """The verdict's fields as rows carry them, or why it cannot be sent (a short text).
    A digest goes with `malformed` and `unknown` only (dropped for the others)."""
    outcome, key_id, account_id, client_ip, at, digest = verdict
    outcome = getattr(outcome, "value", outcome)  # an enum member of the verifier
    if type(outcome) is not str or outcome not in OUTCOMES:
        return f"outcome: expected one of {sorted(OUTCOMES)}"
    keyless = outcome in KEYLESS_OUTCOMES
    if keyless:
        key_id = account_id = None
        if digest is not None and (type(digest) is not str or _DIGEST.fullmatch(digest) is None):
            return "presented_digest: expected schemas.requests.presented_digest() or None"
    elif (
        type(key_id) is not str
        or _KEY.fullmatch(key_id) is None
        or type(account_id) is not str
        or _ACCOUNT.fullmatch(account_id) is None
    ):
        return f"key_id/account_id: a {outcome} outcome needs the key's id and account"
    else:
        digest = None
    if client_ip is not None and (type(client_ip) is not str or not valid_ip(client_ip)):
        client_ip = str(client_ip)
        if not valid_ip(client_ip):
            return "client_ip: expected an IPv4 or IPv6 address or None"
    ms = _at_ms(at)
    if ms is None:
        return "at: expected an aware datetime between 2000 and 2100"
    return outcome, key_id, account_id, client_ip, ms, digest


class OutcomeAggregator:
    """Turns queued verdicts into outcome rows (runs on the recorder's worker thread)."""

    def __init__(self, counts: MinuteCounts) -> None:
        self.counts = counts
        self.refused = 0
        self._warned = False

    def take(self, verdicts: deque[Verdict], rows: deque[OutcomeRow], now_ms: int) -> None:
        """Move every queued verdict into `rows` (or the counts)."""
        popleft = verdicts.popleft
        while verdicts:
            checked = check_verdict(popleft())
            if isinstance(checked, str):
                self.refused += 1
                if not self._warned:
                    self._warned = True
                    log.warning("verification outcome dropped (further ones counted): %s", checked)
                continue
            outcome, key_id, account_id, client_ip, ms, digest = checked
            if outcome == VALID:
                assert key_id is not None and account_id is not None
                self.counts.add(key_id, account_id, client_ip, ms, now_ms)
            else:
                rows.append((ms, outcome, key_id, account_id, client_ip, 1, digest))

    def tick(
        self, verdicts: deque[Verdict], rows: deque[OutcomeRow], now_ms: int, force: bool
    ) -> int:
        """`take`, then the counts that are due; returns how many verdicts were refused."""
        before = self.refused
        self.take(verdicts, rows, now_ms)
        rows.extend(self.counts.due(now_ms, force))
        return self.refused - before


def outcome_config(config: RecorderConfig) -> RecorderConfig:
    """The usage recorder's config as the outcome recorder uses it: its own client id and,
    when spilling, its own `outcomes/` directory under `spill_dir` (one spill directory
    belongs to one recorder)."""
    spill = None if config.spill_dir is None else config.spill_dir / "outcomes"
    client_id = "keypulse-outcomes" if config.client_id == "keypulse-usage" else config.client_id
    return replace(config, spill_dir=spill, client_id=client_id)


class OutcomeRecorder(BufferedRecorder):
    """Verification outcomes to the requests topic; the `KeyVerifier`'s outcome sink.

    Takes the same `RecorderConfig` as the `UsageRecorder` (see `outcome_config`).
    """

    def __init__(
        self, config: RecorderConfig, count_flush_ms: int = DEFAULT_COUNT_FLUSH_MS
    ) -> None:
        self._verdicts: deque[Verdict] = deque()
        self._verdict_bound = config.max_buffered_events
        self._aggregator = OutcomeAggregator(MinuteCounts(count_flush_ms))
        super().__init__(
            outcome_config(config),
            pack=pack_outcomes,
            tick=self._tick,
            thread_name="keypulse-outcome-recorder",
        )

    def record(
        self,
        outcome: str,
        key_id: str | None,
        account_id: str | None,
        client_ip: str | None,
        at: datetime,
        presented_digest: str | None = None,
    ) -> None:
        """Queue one verdict; never blocks, never raises. Checked on the worker thread: a
        verdict it cannot send (an unknown outcome, a bad id, a naive `at`, a digest not
        made by `schemas.requests.presented_digest`) is dropped, counted and logged once.
        `presented_digest` is kept for `malformed` and `unknown` verdicts only."""
        try:
            verdicts = self._verdicts
            if len(verdicts) < self._verdict_bound:
                verdicts.append((outcome, key_id, account_id, client_ip, at, presented_digest))
            else:
                self._drops.add(1)
        except Exception:  # never on the hot path; defensive only
            return

    def _tick(self, urgent: bool) -> None:
        if len(self._buf) >= self._bound and not urgent:
            return  # the worker is not draining: verdicts wait (and then drop) in their queue
        refused = self._aggregator.tick(self._verdicts, self._buf, now_ms(), urgent)
        if refused:
            self._drops.add(refused)

    def pending_counts(self) -> int:
        """(key, minute) counts held, not yet queued as events."""
        return len(self._aggregator.counts)

    def close(self, timeout: float | None = None) -> RecorderStats:
        """As `BufferedRecorder.close`; verdicts queued while the worker shut down are
        dropped and counted."""
        self._verdict_bound = 0
        stats = super().close(timeout)
        stragglers = len(self._verdicts)
        if stragglers and not self._worker.alive:
            self._verdicts.clear()
            self._drops.add(stragglers)
            return self.stats()
        return stats
