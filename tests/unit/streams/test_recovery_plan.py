"""The recovery planner with two workers sharing one ClickHouse: over interleavings of
their write-ahead rows, partition moves and crashes at every step of a write, every
record is counted exactly once in every table after the final recovery.

The model (`Cluster`) follows the ingest agent and ClickHouse step by step:
- a topic of 4 partitions; each record is one event, counted per table by (partition,
  offset);
- ClickHouse: three tables an insert reaches (`requests_raw`, one materialized-view
  target in the same insert, `verification_outcomes` in the next one), each dropping a
  token it still remembers among its last `window` inserts (as
  `non_replicated_deduplication_window` does); the write-ahead log with each row's writer
  and seq (a writer counts on from the highest seq stored when it first writes, as
  `GrowingCounter` does, so two writers' seqs interleave);
- Kafka: committed offsets per partition, committed after a take landed or later (or
  never: the worker died first); an assignment starts reading at the committed offset;
- a worker's take: recover if partitions were assigned since (the planner's blocks
  re-applied whole under their token; a marker row before and after says the worker's
  own blocks landed), then blocks of its records
  past the watermarks, each a write-ahead row and the three inserts. A crash stops the
  take after any of these steps; the writer is gone, a restart is a new writer.

`test_the_newest_insert_alone_is_not_enough` keeps the old planner (re-apply the row of
the highest seq only) failing on the same model, on the counterexample hypothesis found
for it (`NEWEST_ONLY_LOSES`, also an explicit example of the property test). Planners
changed on purpose fail too (checked by hand): re-applying too-old blocks (the small
window test finds a double count), recovering nothing at start, taking any newer row as
proof, re-applying only the assigned partitions' part under a derived token.

Not modelled: a worker stalled past its session that writes after its partitions moved
(nothing fences it), two same-token inserts at once, and inserts making several blocks
(one per day partition: `TRUSTED_LATER_WRITES` keeps a margin for those).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.worker.ports import InsertBlock, LoggedWrite, OffsetRange
from streams.worker.recovery_plan import RecoveryPlan, plan_recovery, unfinished

TOPIC = "t.requests"
PARTITIONS = 4
TABLES = ("requests_raw", "usage_rollup", "verification_outcomes")
BIG_WINDOW = 10_000

Planner = Callable[
    [Collection[LoggedWrite], Mapping[str, int], Mapping[int, int], Collection[int] | None, int],
    RecoveryPlan,
]


def old_planner(
    log: Collection[LoggedWrite],
    later: Mapping[str, int],
    marks: Mapping[int, int],
    assigned: Collection[int] | None,
    trusted: int,
) -> RecoveryPlan:
    """What recovery did before: re-apply the row of the highest seq, whoever wrote it."""
    del later, assigned, trusted
    plan = RecoveryPlan(watermarks=dict(marks))
    newest = max(log, key=lambda r: r.seq, default=None)
    if newest is not None and newest.ranges and not newest.checkpoint:
        plan.reapply.append(newest)
    return plan


# --------------------------------------------------------------------------- the model


@dataclass
class Table:
    window: int
    remembered: deque[str] = field(default_factory=deque)
    counts: dict[tuple[int, int], int] = field(default_factory=dict)

    def insert(self, token: str, records: list[tuple[int, int]]) -> None:
        if token in self.remembered:
            return
        self.remembered.append(token)
        while len(self.remembered) > self.window:
            self.remembered.popleft()
        for rec in records:
            self.counts[rec] = self.counts.get(rec, 0) + 1


@dataclass
class Row:
    writer: str
    seq: int
    token: str
    ranges: tuple[OffsetRange, ...]


class Crash(Exception):
    """The worker died at this step."""


@dataclass
class Worker:
    writer: str
    assigned: set[int] = field(default_factory=set)
    pending: set[int] | None = None
    """Partitions assigned since its last recovery (None: all, as at start)."""
    stale: bool = True
    position: dict[int, int] = field(default_factory=dict)
    watermarks: dict[int, int] = field(default_factory=dict)
    seq: int | None = None
    unmarked: bool = False
    """Blocks landed since its last marker row."""
    steps_left: int | None = None
    """Store steps until it crashes (None: it does not)."""


class Cluster:
    def __init__(self, planner: Planner, window: int) -> None:
        self.planner = planner
        self.window = window
        self.tables = {name: Table(window) for name in TABLES}
        self.log: list[Row] = []
        self.ends = [0] * PARTITIONS  # records produced per partition
        self.committed = [0] * PARTITIONS
        self.writers = count()
        self.workers: list[Worker | None] = [self._fresh(), self._fresh()]
        self.too_old: list[tuple[OffsetRange, ...]] = []

    def _fresh(self) -> Worker:
        return Worker(f"w{next(self.writers)}")

    # ---------------------------------------------------------------- the store's side

    def _step(self, worker: Worker) -> None:
        if worker.steps_left is not None:
            if worker.steps_left == 0:
                raise Crash
            worker.steps_left -= 1

    def _wal(self, worker: Worker, token: str, ranges: tuple[OffsetRange, ...]) -> None:
        self._step(worker)
        if worker.seq is None:
            worker.seq = max((r.seq for r in self.log), default=0)
        worker.seq += 1
        self.log.append(Row(worker.writer, worker.seq, token, ranges))

    def _write(self, worker: Worker, ranges: tuple[OffsetRange, ...]) -> None:
        """A block: the write-ahead row, then each table's insert under its token."""
        token = InsertBlock(TOPIC, list(ranges), {}, 0, 0).token
        self._wal(worker, token, ranges)
        records = [(r.partition, o) for r in ranges for o in range(r.start, r.end + 1)]
        for table in TABLES:
            self._step(worker)
            self.tables[table].insert(token, records)
        worker.unmarked = True

    def recovery_log(self) -> list[LoggedWrite]:
        """As `ingest_log.recovery_rows`: rows under the token of some writer's newest row."""
        newest: dict[str, Row] = {}
        for row in self.log:
            if row.writer not in newest or row.seq > newest[row.writer].seq:
                newest[row.writer] = row
        tokens = {r.token for r in newest.values()}
        return [
            LoggedWrite(r.writer, r.seq, r.token, r.ranges) for r in self.log if r.token in tokens
        ]

    def later_writes(self, tokens: list[str]) -> dict[str, int]:
        out = {}
        for token in tokens:
            first = next(i for i, r in enumerate(self.log) if r.token == token)
            out[token] = len(self.log) - first
        return out

    def log_watermarks(self) -> dict[int, int]:
        marks: dict[int, int] = {}
        for row in self.log:
            for r in row.ranges:
                marks[r.partition] = max(marks.get(r.partition, -1), r.end)
        return marks

    # ---------------------------------------------------------------- the agent's side

    def _recover(self, worker: Worker) -> None:
        assigned = None if worker.pending is None else frozenset(worker.pending)
        worker.pending, worker.stale = set(), False
        self._mark(worker)
        rows = self.recovery_log()
        later = self.later_writes(unfinished(rows))
        plan = self.planner(rows, later, self.log_watermarks(), assigned, self.window)
        self.too_old.extend(r.ranges for r in plan.too_old)
        for row in plan.reapply:
            self._write(worker, row.ranges)
        self._mark(worker)
        worker.watermarks = dict(plan.watermarks)

    def _mark(self, worker: Worker) -> None:
        if worker.unmarked:
            self._wal(worker, f"{TOPIC}|", ())
            worker.unmarked = False

    def take(self, w: int, per_partition: int, block: int, crash_at: int | None) -> bool:
        """One take of worker `w`; False when it crashed (the worker is gone)."""
        worker = self.workers[w]
        if worker is None:
            return True
        worker.steps_left = crash_at
        try:
            if worker.stale:
                self._recover(worker)
            records: list[tuple[int, int]] = []
            for p in sorted(worker.assigned):
                start = worker.position.get(p, self.committed[p])
                upto = min(self.ends[p], start + per_partition)
                records.extend((p, o) for o in range(start, upto))
                worker.position[p] = upto
            planned = [r for r in records if r[1] > worker.watermarks.get(r[0], -1)]
            for i in range(0, len(planned), block):
                spans: dict[int, list[int]] = {}
                for p, o in planned[i : i + block]:
                    spans.setdefault(p, [o, o])[1] = o
                ranges = tuple(OffsetRange(p, s, e) for p, (s, e) in sorted(spans.items()))
                self._write(worker, ranges)
                for r in ranges:
                    worker.watermarks[r.partition] = max(
                        worker.watermarks.get(r.partition, -1), r.end
                    )
            if crash_at is not None:
                raise Crash
        except Crash:
            self.workers[w] = None
            return False
        return True

    def commit(self, w: int) -> None:
        worker = self.workers[w]
        if worker is not None:
            for p in worker.assigned:
                self.committed[p] = worker.position.get(p, self.committed[p])

    def restart(self, w: int) -> None:
        if self.workers[w] is None:
            self.workers[w] = self._fresh()

    def rebalance(self, owners: tuple[int, ...]) -> None:
        """Partition p goes to worker owners[p], or the other one when that is down."""
        live = [w for w, worker in enumerate(self.workers) if worker is not None]
        new: dict[int, set[int]] = {w: set() for w in live}
        if live:
            for p, w in enumerate(owners):
                new[w if w in new else live[0]].add(p)
        for w in live:
            worker = self.workers[w]
            assert worker is not None
            gained = new[w] - worker.assigned
            worker.assigned = new[w]
            worker.position = {}  # eager: every assigned partition reads from committed
            if gained:
                if worker.pending is not None:
                    worker.pending |= gained
                worker.stale = True

    def finish(self) -> None:
        """Restart everyone, assign every partition, read to the end without crashing."""
        self.restart(0)
        self.restart(1)
        self.rebalance(tuple(p % 2 for p in range(PARTITIONS)))
        while self._busy(0) or self._busy(1):
            for w in (0, 1):
                self.take(w, 3, 2, None)
                self.commit(w)

    def _busy(self, w: int) -> bool:
        worker = self.workers[w]
        if worker is None:
            return False
        behind = any(
            worker.position.get(p, self.committed[p]) < self.ends[p] for p in worker.assigned
        )
        return behind or worker.stale

    def problems(self) -> list[str]:
        """Records not counted exactly once (a record of a too-old block may be missing)."""
        out = []
        lost_ok = {
            (r.partition, o)
            for ranges in self.too_old
            for r in ranges
            for o in range(r.start, r.end + 1)
        }
        for name, table in self.tables.items():
            for p in range(PARTITIONS):
                for o in range(self.ends[p]):
                    n = table.counts.get((p, o), 0)
                    if n > 1 or (n == 0 and (p, o) not in lost_ok):
                        out.append(f"{name} ({p}, {o}) counted {n} times")
        return out


# --------------------------------------------------------------------------- events

produce = st.tuples(st.just("produce"), st.integers(0, PARTITIONS - 1), st.integers(1, 4))
rebalance = st.tuples(
    st.just("rebalance"), st.tuples(*[st.integers(0, 1) for _ in range(PARTITIONS)])
)
take = st.tuples(
    st.just("take"),
    st.integers(0, 1),
    st.integers(1, 4),  # records per partition
    st.integers(1, 3),  # records per block
    st.none() | st.integers(0, 12),  # store steps before a crash
    st.booleans(),  # offsets committed after it landed
)
restart = st.tuples(st.just("restart"), st.integers(0, 1))
events = st.lists(
    st.one_of(produce, take, take, rebalance, take, restart, produce), min_size=3, max_size=40
)


def run(planner: Planner, window: int, script: Sequence[tuple[Any, ...]]) -> Cluster:
    cluster = Cluster(planner, window)
    cluster.rebalance((0, 0, 1, 1))
    for event in script:
        kind = event[0]
        if kind == "produce":
            _, p, n = event
            cluster.ends[p] += n
        elif kind == "rebalance":
            cluster.rebalance(event[1])
        elif kind == "restart":
            cluster.restart(event[1])
        else:
            _, w, per, block, crash_at, commit = event
            if cluster.take(w, per, block, crash_at) and commit:
                cluster.commit(w)
    cluster.finish()
    return cluster


def pure_recovery(
    log: Collection[LoggedWrite],
    later: Mapping[str, int],
    marks: Mapping[int, int],
    assigned: Collection[int] | None,
    trusted: int,
) -> RecoveryPlan:
    return plan_recovery(log, later, marks, assigned, trusted)


NEWEST_ONLY_LOSES = [
    ("produce", 2, 2),
    ("take", 1, 1, 1, None, False),
    ("take", 0, 1, 1, None, False),
    ("take", 1, 1, 1, 1, False),
]
"""The smallest script hypothesis found against the old planner (`hypothesis.find` over
`events`, 2,000 examples, 9 s): worker 1 lands 2:0-0 (seq 1); worker 0 starts, recovers
and re-applies it (its rows: seq 2, then the marker, seq 3); worker 1 writes the
write-ahead row of 2:1-1 under its own next seq, 2, and dies before the insert. The
newest row is worker 0's marker: nothing is re-applied, the watermark of partition 2 is
1, and record (2, 1) is in no table."""


@example(NEWEST_ONLY_LOSES)
@settings(max_examples=400, deadline=None, derandomize=True)
@given(events)
def test_every_record_is_counted_once_after_any_interleaving(
    script: list[tuple[Any, ...]],
) -> None:
    assert run(pure_recovery, BIG_WINDOW, script).problems() == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(events, st.integers(1, 4))
def test_a_small_window_never_double_counts(script: list[tuple[Any, ...]], window: int) -> None:
    """Blocks too far back for their token are reported, never re-applied: nothing is
    counted twice, and only records of reported blocks may be missing."""
    assert run(pure_recovery, window, script).problems() == []


def _row(
    writer: str, seq: int, *spans: tuple[int, int, int], checkpoint: bool = False
) -> LoggedWrite:
    ranges = tuple(OffsetRange(*span) for span in spans)
    return LoggedWrite(
        writer, seq, InsertBlock(TOPIC, list(ranges), {}, 0, 0).token, ranges, checkpoint
    )


def test_a_row_followed_by_its_writer_landed_and_markers_and_checkpoints_are_no_blocks() -> None:
    a1, a2 = _row("a", 1, (0, 0, 4)), _row("a", 2, (0, 5, 9), (1, 0, 3))
    b1 = _row("b", 2, (2, 0, 0))
    marker, checkpoint = _row("c", 9), _row("d", 1, (3, 7, 7), checkpoint=True)
    log = [a1, a2, b1, marker, checkpoint]
    assert unfinished(log) == sorted([a2.token, b1.token])
    later = {a2.token: 4, b1.token: 3}
    plan = plan_recovery(log, later, {0: 9, 1: 3, 2: 0, 3: 7}, assigned={1})
    assert (plan.reapply, plan.too_old) == ([a2], [])  # whole: partition 0's range too
    assert plan.watermarks == {0: 9, 1: 3, 2: 0, 3: 7}
    assert plan_recovery(log, later, {}, None).reapply == [a2, b1]  # oldest first
    too_far = plan_recovery(log, {a2.token: 11}, {}, {0, 2}, trusted_writes=10)
    assert (too_far.reapply, too_far.too_old) == ([], [a2, b1])  # b1: no count, too far


def test_the_newest_insert_alone_is_not_enough() -> None:
    lost = run(old_planner, BIG_WINDOW, NEWEST_ONLY_LOSES).problems()
    assert lost == [f"{table} (2, 1) counted 0 times" for table in TABLES]
    assert run(pure_recovery, BIG_WINDOW, NEWEST_ONLY_LOSES).problems() == []
