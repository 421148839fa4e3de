"""Which landed request events the key registry attributes to no account (pure).

Reads count an account's events only for the keys the registry says it owns
(`projections.queries`); this module decides what to record about the rest so an
operator can see them: events for a key the registry does not know (`unknown_key`) and
events sent under an account that does not own the key (`account_mismatch`).

The input is a running total per (account_id, key_id) pair that the registry does not
attribute (`PairTotal`, from the rollups ingest keeps); the output is one finding per
pair and reason, itself a running total, recorded again whenever it grows. Rules:

- An account mismatch is recorded at once (a key's owner never changes: the registry
  ignores a second create of a key id).
- A request can legitimately land shortly before its key's `key.created` is applied, so
  an unknown key's pair is recorded only once it has been unknown for `grace_s` (by the
  caller's clock, from the first decision that saw it unknown); a pair recorded before
  (for example by an earlier run of the worker) is updated without waiting again. A key
  created after its pair was recorded is counted by the reads from then on (they follow
  the registry at read time); the finding stays, as what was unknown when it was checked.
- A pair's events found under one reason are not counted again under the other (an
  unknown key later created by another account: the mismatch finding counts only the
  events beyond the unknown-key finding).

Times (`now`) are the caller's monotonic seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.worker.ports import PairTotal, Recorded, UnattributedEvents, UnattributedReason

Pair = tuple[str, str]
"""(account_id, key_id)"""

UNKNOWN = UnattributedReason.UNKNOWN_KEY
MISMATCH = UnattributedReason.ACCOUNT_MISMATCH
_OTHER = {UNKNOWN: MISMATCH, MISMATCH: UNKNOWN}


class Attribution:
    """What was recorded, and since when each unknown pair has been unknown."""

    def __init__(self, grace_s: float, recorded: Recorded | None = None) -> None:
        self.grace_s = grace_s
        self._recorded: Recorded = dict(recorded or {})
        self._unknown_since: dict[Pair, float] = {}

    @property
    def waiting(self) -> int:
        """Unknown-key pairs within their grace, not recorded yet."""
        return sum(1 for (a, k) in self._unknown_since if (a, k, UNKNOWN) not in self._recorded)

    def totals(self) -> dict[str, int]:
        """Recorded events by reason (every reason present, 0 when none)."""
        out = dict.fromkeys((r.value for r in UnattributedReason), 0)
        for (_, _, reason), events in self._recorded.items():
            out[reason.value] += events
        return out

    def decide(self, pairs: Sequence[PairTotal], now: float) -> list[UnattributedEvents]:
        """The findings to record given every unattributed pair's running total. They
        count as recorded from here on: the caller records them before deciding again."""
        findings: list[UnattributedEvents] = []
        unknown_now: set[Pair] = set()
        for total in pairs:
            pair = (total.account_id, total.key_id)
            if total.owner == total.account_id:
                continue  # attributed after all
            reason = MISMATCH if total.owner is not None else UNKNOWN
            if reason is UNKNOWN:
                unknown_now.add(pair)
                if not self._unknown_is_due(pair, now):
                    continue
            finding = self._grown(total, reason)
            if finding is not None:
                self._recorded[(*pair, reason)] = finding.events
                findings.append(finding)
        for pair in [p for p in self._unknown_since if p not in unknown_now]:
            del self._unknown_since[pair]  # its key is registered now
        return findings

    def _unknown_is_due(self, pair: Pair, now: float) -> bool:
        since = self._unknown_since.setdefault(pair, now)
        return (*pair, UNKNOWN) in self._recorded or now - since >= self.grace_s

    def _grown(self, total: PairTotal, reason: UnattributedReason) -> UnattributedEvents | None:
        """The pair's finding for `reason` if it grew past what was recorded."""
        pair = (total.account_id, total.key_id)
        events = total.events - self._recorded.get((*pair, _OTHER[reason]), 0)
        if events <= self._recorded.get((*pair, reason), 0):
            return None
        owner = total.owner if reason is MISMATCH else None
        return UnattributedEvents(*pair, reason, events, total.newest_at_ms, owner)
