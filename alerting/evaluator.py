"""The alert evaluator: one instance per deployment, running inside the worker.

Contracts:

- Woken after every landed ingest block (`on_block`) and at least every `interval_s`;
  cycles are at least `min_gap_s` apart. The evaluation time comes from
  `alerting.eval_clock` (the ingest watermark); it advances without traffic only when
  ClickHouse holds every offset of the requests topic (`end_offsets` vs
  `ingest_offsets`).
- A cycle evaluates every enabled rule with one query per (kind, window)
  (`alerting.planning`), decides with the pure `alerting.evaluation.evaluate`, then:
  1. publishes the notify decisions as `Notification`s and waits for the broker;
  2. appends every transition to `alert_history` and upserts the changed instances
     (one batched write, retried with the same token until it succeeds);
  3. only then adopts the new instance states.
  A failed publish aborts the cycle without adopting anything: the next cycle re-derives
  the same decisions with the same idempotency keys. A failed stats query turns the
  rule's instances into the explicit error state.
- Restart: rules and the latest persisted instances are loaded before the first cycle,
  so an open episode continues and nothing is notified again; the clock never goes back
  behind a restored instance.
- Rule changes arrive through `apply_rule_changes` (the rules agent); the newest version
  of a rule wins. The unsettled instances of a deleted rule are closed by the next cycle
  (`close_for_deleted_rule`: an open episode resolves, notifying through the rule's last
  channels when it sends resolved notifications) and then forgotten; closures still owed
  at a restart are found from the deleted rules' last definitions.
- Instances are created lazily: a key that has never breached and has no instance is
  not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from alerting.eval_clock import EvaluationClock
from alerting.evaluation import Closing, Evaluation, evaluate
from alerting.planning import QueryAnswer, QueryKey, plan_queries
from alerting.ports import (
    AlertStateStore,
    EndOffsets,
    EvaluationQueries,
    NotificationPublisher,
    RuleChange,
    RuleSource,
    StatsQuery,
)
from schemas.alerts import AlertInstance, AlertRule, AlertState, Notification
from schemas.runtime.retry import IsTransient, io_failure, off_loop_until_done
from schemas.utc import from_epoch_ms, utc_now

log = logging.getLogger(__name__)
T = TypeVar("T")


class LandedBlock(Protocol):
    """What the evaluator reads from an ingest block that landed."""

    count: int
    max_occurred_at_ms: int


@dataclass(frozen=True)
class EvaluatorConfig:
    interval_s: float = 5.0
    min_gap_s: float = 1.0
    idle_advance_s: float = 10.0
    retry_max_s: float = 10.0
    transient: IsTransient = io_failure
    """Which store failures are retried (the rest surface at once)."""


@dataclass
class EvaluatorStats:
    cycles: int = 0
    failed_cycles: int = 0
    transitions: int = 0
    notifications: int = 0
    queries: int = 0
    last_queries: int = 0
    last_error: str = ""
    last_evaluated_at: datetime | None = None
    cycle_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


@dataclass(frozen=True)
class CycleReport:
    evaluated_at: datetime
    rules: int
    queries: int
    observations: int
    transitions: int
    notifications: list[Notification]
    elapsed_ms: float


def _unsettled(inst: AlertInstance) -> bool:
    return inst.episode_open or inst.state not in (AlertState.NORMAL, AlertState.RESOLVED)


class Evaluator:
    """Owns the rules and instance states of the deployment (see the module docstring)."""

    def __init__(
        self,
        queries: EvaluationQueries,
        rules: RuleSource,
        state: AlertStateStore,
        publisher: NotificationPublisher,
        config: EvaluatorConfig | None = None,
        *,
        end_offsets: EndOffsets | None = None,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._queries = queries
        self._rule_source = rules
        self._state = state
        self._publisher = publisher
        self._config = config = config or EvaluatorConfig()
        self._end_offsets = end_offsets
        self._wall = wall_clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ch-eval")
        self._clock = EvaluationClock(config.idle_advance_s)
        self._rules: dict[str, AlertRule] = {}
        self._versions: dict[str, int] = {}
        self._instances: dict[str, dict[str, AlertInstance]] = {}  # rule_id -> key_id -> inst
        self._closing: dict[str, Closing] = {}  # deleted rule_id -> instances to close
        self._wake = asyncio.Event()
        self._started = False
        self.stats = EvaluatorStats()

    # ----------------------------------------------------------------- inputs

    def on_block(self, block: LandedBlock) -> None:
        """IngestAgent listener: a block landed; advance the watermark and wake up."""
        if block.count > 0 and block.max_occurred_at_ms > 0:
            at = from_epoch_ms(block.max_occurred_at_ms)
            self._clock.landed(at, self._wall())
            self._wake.set()

    def apply_rule_changes(self, changes: Iterable[RuleChange]) -> None:
        """Rules agent listener: adopt created/updated/deleted rules (newest version wins)."""
        for change in changes:
            self._adopt(change.rule_id, change.rule, change.version)
        self._wake.set()

    def _adopt(self, rule_id: str, rule: AlertRule | None, version: int) -> None:
        if version < self._versions.get(rule_id, -1):
            return
        self._versions[rule_id] = version
        if rule is None:
            last = self._rules.pop(rule_id, None)
            instances = self._instances.pop(rule_id, {})
            if last is not None and instances:
                self._closing[rule_id] = Closing(last, list(instances.values()))
        else:
            self._rules[rule_id] = rule
            closing = self._closing.pop(rule_id, None)
            if closing is not None:  # re-created before the close: its episodes go on
                self._instances[rule_id] = {i.key_id: i for i in closing.instances}

    @property
    def rules(self) -> dict[str, AlertRule]:
        return dict(self._rules)

    def instances(self) -> list[AlertInstance]:
        return [i for per_rule in self._instances.values() for i in per_rule.values()]

    # ----------------------------------------------------------------- I/O helpers

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _io_retrying(self, fn: Callable[..., T], *args: Any) -> T:
        return await off_loop_until_done(
            self._executor,
            fn,
            *args,
            logger=log,
            max_delay_s=self._config.retry_max_s,
            transient=self._config.transient,
        )

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load rules, persisted instances and the watermark (idempotent)."""
        if self._started:
            return
        for rule, version in await self._io_retrying(self._rule_source.load_rules):
            self._adopt(rule.rule_id, rule, version)
        deleted = self._deleted(await self._io_retrying(self._rule_source.load_deleted_rules))
        for inst in await self._io_retrying(self._state.load_instances):
            self._restore(inst, deleted)
        watermark = await self._io_retrying(self._queries.ingest_watermark)
        wall = self._wall()
        if watermark is not None:
            self._clock.landed(watermark, wall)
        else:
            self._clock.last_landed_wall = wall
        self._started = True
        log.info(
            "evaluator: %d rules, %d instances, watermark %s",
            len(self._rules),
            sum(len(v) for v in self._instances.values()),
            watermark,
        )

    def _deleted(self, loaded: Iterable[tuple[AlertRule, int]]) -> dict[str, AlertRule]:
        """The last definitions of deleted rules that are not current again."""
        deleted: dict[str, AlertRule] = {}
        for rule, version in loaded:
            if rule.rule_id not in self._rules:
                deleted[rule.rule_id] = rule
                self._versions[rule.rule_id] = max(version, self._versions.get(rule.rule_id, -1))
        return deleted

    def _restore(self, inst: AlertInstance, deleted: dict[str, AlertRule]) -> None:
        """Take back a persisted instance: its rule's, or one a deleted rule still owes a close."""
        current = inst.rule_id in self._rules
        if inst.since is not None and (current or inst.rule_id in deleted):
            self._clock.raise_floor(inst.since)
        if current:
            self._instances.setdefault(inst.rule_id, {})[inst.key_id] = inst
        elif inst.rule_id in deleted and _unsettled(inst):
            last = deleted[inst.rule_id]
            self._closing.setdefault(inst.rule_id, Closing(last, [])).instances.append(inst)

    async def run(self) -> None:
        """The evaluator task: start, then cycle on wake-ups and every `interval_s`."""
        await self.start()
        last_end = -1e9
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._config.interval_s)
            gap = self._config.min_gap_s - (time.monotonic() - last_end)
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            try:
                await self.run_cycle()
            except Exception as exc:
                self.stats.failed_cycles += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("evaluator: cycle failed")
            last_end = time.monotonic()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # ----------------------------------------------------------------- one cycle

    def _query_all(self, specs: Sequence[StatsQuery], now: datetime) -> dict[QueryKey, QueryAnswer]:
        answers: dict[QueryKey, QueryAnswer] = {}
        for spec in specs:
            try:
                answers[(spec.kind, spec.window_s, spec.options)] = QueryAnswer.of(
                    self._queries.window_stats(spec, now)
                )
            except Exception as exc:
                log.warning("evaluator: %s/%ss query failed: %s", spec.kind, spec.window_s, exc)
                answers[(spec.kind, spec.window_s, spec.options)] = QueryAnswer.failed(
                    f"query failed: {type(exc).__name__}"
                )
        return answers

    async def _ingest_caught_up(self) -> bool:
        """True when ClickHouse holds everything in the requests topic (or we cannot tell)."""
        if self._end_offsets is None:
            return True
        try:
            ends = await self._end_offsets()
            if ends is None:
                return True
            written = await self._io(self._queries.ingest_offsets)
        except Exception as exc:
            log.warning("evaluator: cannot tell whether ingest is caught up: %s", exc)
            return False
        return all(written.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    async def _evaluation_time(self) -> datetime | None:
        wall = self._wall()
        caught_up = self._clock.idle(wall) and await self._ingest_caught_up()
        return self._clock.now(wall, caught_up)

    async def _publish(self, result: Evaluation) -> list[Notification]:
        """Publish the cycle's notifications; return once the broker confirmed them."""
        if not result.decisions:
            return []
        names = await self._io_retrying(self._queries.key_names, result.key_ids)
        notifications = result.notifications(names)
        await self._publisher.publish(notifications)
        return notifications

    async def _persist(self, result: Evaluation) -> None:
        """Append the history and upsert the changed instances (retried with one token)."""
        if result.history:
            token = f"eval-{time.time_ns()}"
            changed = list(result.changed.values())
            await self._io_retrying(self._state.save, result.history, changed, token)

    def _commit(self, result: Evaluation, closing: dict[str, Closing]) -> None:
        """Adopt the new instance states; forget the closed rules (unless re-created)."""
        for inst in result.changed.values():
            if inst.rule_id in self._rules:
                self._instances.setdefault(inst.rule_id, {})[inst.key_id] = inst
        for rule_id, entry in closing.items():
            if self._closing.get(rule_id) is entry:  # not re-created meanwhile
                del self._closing[rule_id]

    def _count(self, report: CycleReport) -> None:
        s = self.stats
        s.cycles += 1
        s.transitions += report.transitions
        s.notifications += len(report.notifications)
        s.queries += report.queries
        s.last_queries = report.queries
        s.last_evaluated_at = report.evaluated_at
        s.cycle_ms.append(report.elapsed_ms)

    async def run_cycle(self) -> CycleReport | None:
        """Evaluate every enabled rule once; None when there is no evaluation time yet.

        Query, `evaluate`, publish, persist, then adopt (see the module docstring).
        """
        await self.start()
        now = await self._evaluation_time()
        if now is None:
            return None
        began = time.perf_counter()
        rules = [r for r in self._rules.values() if r.enabled]
        specs = plan_queries(rules)
        answers = await self._io(self._query_all, specs, now) if specs else {}
        closing = dict(self._closing)
        result = evaluate(now, rules, answers, self._instances, closing)
        notifications = await self._publish(result)
        await self._persist(result)
        self._commit(result, closing)
        elapsed_ms = (time.perf_counter() - began) * 1000
        report = CycleReport(
            now,
            len(rules),
            len(specs),
            result.observations,
            len(result.history),
            notifications,
            elapsed_ms,
        )
        self._count(report)
        return report
