"""Which landed request events the key registry attributes to no account (pure).

Reads count an account's events only for the keys the registry says it owns
(`projections.queries`); this module finds the rest so an operator can see them:
events for a key the registry does not know (`unknown_key`) and events sent under an
account that does not own the key (`account_mismatch`).

`count_pairs` tallies an insert block by (account_id, key_id). `Attribution` holds what
is known and what waits for a verdict, and decides; the caller does the I/O (looks up
`lookups()` in the registry, records what `decide` returns). Its rules:

- A pair whose key the registry knows is decided at once: attributed when the owner is
  the account it was sent under, otherwise an account mismatch (ownership never changes:
  the registry ignores a second create of a key id, so owners are cached, up to
  `max_owners` keys, oldest forgotten first).
- A request can legitimately land shortly before its key's `key.created` is applied, so
  a pair whose key the registry does not know waits: it is looked up again on every
  decision and becomes an `unknown_key` finding only when it is still unknown
  `grace_s` after it was first seen (or when more than `max_pending` pairs wait: the
  oldest go first). Events of the same pair that land meanwhile are added to it.
  A key created after its finding was recorded is counted by the reads from then on
  (they follow the registry at read time); the finding stays as a record of what was
  unknown when it was checked.
- What waits is kept in memory only: a worker that stops drops the pairs still within
  their grace (the reads are unaffected, only those findings are not recorded).

Times (`now`) are the caller's monotonic seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.worker.ports import UnattributedEvents, UnattributedReason

Pair = tuple[str, str]
"""(account_id, key_id)"""


def count_pairs(account_ids: Sequence[str], key_ids: Sequence[str]) -> Counter[Pair]:
    """Events per (account_id, key_id) of one block's columns."""
    return Counter(zip(account_ids, key_ids, strict=True))


@dataclass
class _Waiting:
    events: int
    first_seen: float
    newest_at_ms: int
    source: str


class Attribution:
    """Pairs waiting for a verdict and the cached owners of registered keys."""

    def __init__(
        self, grace_s: float, max_owners: int = 200_000, max_pending: int = 100_000
    ) -> None:
        self.grace_s = grace_s
        self._max_owners = max_owners
        self._max_pending = max_pending
        self._owners: dict[str, str] = {}
        self._waiting: dict[Pair, _Waiting] = {}

    @property
    def pending(self) -> int:
        """Pairs waiting for a verdict."""
        return len(self._waiting)

    def add(self, counts: Mapping[Pair, int], newest_at_ms: int, source: str, now: float) -> None:
        """Take one landed block's tally (`source`: its token; `newest_at_ms`: its newest
        event time). Pairs of keys cached as owned by their account are settled here."""
        owners = self._owners
        for pair, events in counts.items():
            account, key = pair
            if owners.get(key) == account:
                continue
            waiting = self._waiting.get(pair)
            if waiting is None:
                self._waiting[pair] = _Waiting(events, now, newest_at_ms, source)
            else:
                waiting.events += events
                waiting.newest_at_ms = max(waiting.newest_at_ms, newest_at_ms)

    def lookups(self) -> list[str]:
        """Key ids to look up in the registry before `decide` (owners not cached)."""
        return sorted({key for _, key in self._waiting if key not in self._owners})

    def decide(self, found: Mapping[str, str], now: float) -> list[UnattributedEvents]:
        """Settle the waiting pairs given `found` (key id -> owning account, for the
        registered keys among `lookups()`); return the findings to record."""
        for key_id, owner_id in found.items():
            self._remember(key_id, owner_id)
        overflow = len(self._waiting) - self._max_pending
        findings: list[UnattributedEvents] = []
        for rank, (pair, waiting) in enumerate(list(self._waiting.items())):
            account, key = pair
            owner = found.get(key) or self._owners.get(key)
            expired = rank < overflow or now - waiting.first_seen >= self.grace_s
            if owner is None and not expired:
                continue  # unknown for now: its key.created may not be applied yet
            del self._waiting[pair]
            if owner is None:
                findings.append(_finding(pair, waiting, UnattributedReason.UNKNOWN_KEY, None))
            elif owner != account:
                findings.append(_finding(pair, waiting, UnattributedReason.ACCOUNT_MISMATCH, owner))
        return findings

    def _remember(self, key: str, owner: str) -> None:
        owners = self._owners
        if key not in owners and len(owners) >= self._max_owners:
            del owners[next(iter(owners))]
        owners[key] = owner


def _finding(
    pair: Pair, waiting: _Waiting, reason: UnattributedReason, owner: str | None
) -> UnattributedEvents:
    account, key = pair
    return UnattributedEvents(
        account_id=account,
        key_id=key,
        reason=reason,
        events=waiting.events,
        newest_at_ms=waiting.newest_at_ms,
        source=waiting.source,
        owner=owner,
    )
