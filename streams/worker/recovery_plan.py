"""Pure crash recovery of ingest when several workers share one ClickHouse: which
recorded inserts to re-apply when partitions are assigned, and the watermarks after.

Every insert is preceded by a write-ahead row (`streams.worker.ports.LoggedWrite`). A
writer (one store instance: a worker process from start to exit) writes its rows one at
a time and retries a failed write under the same token until it lands, before it writes
anything else. So a row followed by a later row of the same writer under another token
(or by a marker row) landed completely, in every table: that is exact, whatever the
deduplication window holds. What may be half-landed is only each writer's newest token,
unless another row under that token is followed so (a recovery that re-applied it, then
wrote on). `unfinished` names those tokens.

On an assignment each unfinished block touching an assigned partition is re-applied
whole, under its own token, also the ranges of partitions this worker was not assigned:
a table that holds the block drops it again by the token; a part re-inserted under a
derived token would count twice in every table that holds the whole block. A token
dedupes only while the table still remembers it (`non_replicated_deduplication_window`
blocks back), so an unfinished block with more than `trusted_writes` write-ahead rows
written since its first one is not re-applied but reported (`too_old`): re-inserting it
might count it twice, skipping it may miss what had not landed; `keypulse replay`
rebuilds the tables exactly.

The watermarks are the highest end offset recorded per partition: every record up to it
is in a block that landed or is re-applied here, so records at or below it are skipped
and a re-read with other block boundaries neither loses nor double-counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from streams.worker.ports import LoggedWrite

TRUSTED_LATER_WRITES = 2_500
"""Write-ahead rows since an unfinished block's first one up to which its token is
trusted to dedupe: a quarter of the 10,000 blocks every table remembers
(`projections.migration_context.MigrationContext.dedup_window`), since one insert makes a
block per day partition its rows fall in (live traffic: one or two)."""


@dataclass
class RecoveryPlan:
    reapply: list[LoggedWrite] = field(default_factory=list)
    """Blocks to re-apply whole under their token, one row per token, oldest first."""
    too_old: list[LoggedWrite] = field(default_factory=list)
    """Unfinished blocks of assigned partitions too far back to trust their token."""
    watermarks: dict[int, int] = field(default_factory=dict)
    """The highest recorded end offset of every partition (records at or below it are
    skipped; each is in a block that landed, or is in `reapply` or `too_old`)."""


def newest_per_writer(log: Iterable[LoggedWrite]) -> dict[str, LoggedWrite]:
    newest: dict[str, LoggedWrite] = {}
    for row in log:
        held = newest.get(row.writer)
        if held is None or row.seq > held.seq:
            newest[row.writer] = row
    return newest


def unfinished(log: Collection[LoggedWrite]) -> list[str]:
    """Tokens that may be half-landed: each writer's newest one, unless some row under it
    is followed by a newer row of its writer under another token. Marker and checkpoint
    rows have nothing to re-apply."""
    newest = newest_per_writer(log)
    suspects = {r.token for r in newest.values() if r.ranges and not r.checkpoint}
    landed = {r.token for r in log if r.token in suspects and newest[r.writer].token != r.token}
    return sorted(suspects - landed)


def plan_recovery(
    log: Collection[LoggedWrite],
    later_writes: Mapping[str, int],
    watermarks: Mapping[int, int],
    assigned: Collection[int] | None = None,
    trusted_writes: int = TRUSTED_LATER_WRITES,
) -> RecoveryPlan:
    """The recovery of `assigned` partitions (None: every partition of the log).

    `log` holds at least every writer's newest row and every row under those tokens
    (`IngestStore.recovery_log`), `later_writes` the write-ahead rows since each
    unfinished token's first row (`IngestStore.later_writes`; a token missing counts as
    too old), `watermarks` the highest recorded end offset per partition."""
    plan = RecoveryPlan()
    firsts: dict[str, LoggedWrite] = {}
    for row in sorted(log, key=lambda r: (r.writer, r.seq)):
        firsts.setdefault(row.token, row)
    for token in unfinished(log):
        row = firsts[token]
        if assigned is not None and not any(r.partition in assigned for r in row.ranges):
            continue
        if later_writes.get(token, trusted_writes + 1) > trusted_writes:
            plan.too_old.append(row)
        else:
            plan.reapply.append(row)
    plan.reapply.sort(key=lambda r: -later_writes[r.token])
    plan.watermarks = dict(watermarks)
    return plan
