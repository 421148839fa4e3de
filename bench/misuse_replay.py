"""`bench.misuse`'s detection run: the detectors evaluated as the evaluator does, over the
final two weeks of simulated time, and the static baselines' figures from the same data.

`Replay.cycle(now, rules)` is one evaluator cycle without the I/O of publishing and
persisting: `alerting.planning.plan_queries`, one
`ClickHouseEvaluationQueries.window_stats` per planned query (a failed query answers
`QueryAnswer.failed`, as `alerting.evaluator` does), the pure
`alerting.evaluation.evaluate` with the instances carried from cycle to cycle (adopted as
the evaluator's `_commit` does). An alert is a FIRING notify decision (one per episode).

Each kind is evaluated at its own cadence of simulated time (`CADENCES`), coarser than the
real evaluator's 5 s to keep the run within minutes, but fine enough that every labelled
anomaly fills most or all of some evaluated window, as it does for the real evaluator:
usage_spike's 1 h window every 30 min (a spike of 1-3 h fills at least 45 min of one),
unknown_ip's every hour (a new address is first used within exactly one), error_pattern's
15 min every 30 min (bursts last 45-120 min), credential_stuffing's 15 min every 10 min
(bursts last at most 5 min), stale presentations every 15 min (each lies in one window).

Baselines (`static_series`, `ips_per_key_hour`): the static rules' measures at the same
evaluation times, computed from rows read once after the backfill (cheaper than a
query per cycle): requests per key over 1 h and the error share per key over 15 min from
`usage_rollup`'s minute rows (in 5-minute bins: windows [t - w, t)), invalid
verifications per client IP over 15 min from `verification_outcomes`, distinct client IPs
per key and clock hour from `requests_raw`.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from alerting.evaluation import evaluate
from alerting.planning import QueryAnswer, QueryKey, plan_queries
from alerting.ports import StatsQuery
from bench.misuse_backfill import TOPIC
from projections.alert_queries import ClickHouseEvaluationQueries
from schemas.alerts import AlertInstance, AlertRule, NotificationKind, RuleKind
from schemas.utc import as_utc

LONG_KINDS = frozenset({RuleKind.USAGE_SPIKE, RuleKind.UNKNOWN_IP})


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    account_id: str
    subject: str
    at: datetime
    value: float | None
    evidence: str


Series3 = dict[tuple[str, str], list[tuple[datetime, float, int]]]
"""(account, subject) -> (evaluation time, value, sample count) of a static baseline."""


@dataclass
class Replay:
    client: Client
    queries: ClickHouseEvaluationQueries = field(init=False)
    instances: dict[str, dict[str, AlertInstance]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    query_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cycles: int = 0

    def __post_init__(self) -> None:
        self.queries = ClickHouseEvaluationQueries(self.client, TOPIC)

    def answers(self, specs: list[StatsQuery], now: datetime) -> dict[QueryKey, QueryAnswer]:
        out: dict[QueryKey, QueryAnswer] = {}
        for spec in specs:
            began = time.perf_counter()
            try:
                answer = QueryAnswer.of(self.queries.window_stats(spec, now))
            except Exception as exc:
                self.errors[spec.kind.value] += 1
                if self.errors[spec.kind.value] <= 3:
                    print(f"replay: {spec.kind.value} query failed: {exc!r}", file=sys.stderr)
                answer = QueryAnswer.failed(f"query failed: {type(exc).__name__}")
            self.query_ms[spec.kind.value].append((time.perf_counter() - began) * 1000)
            out[(spec.kind, spec.window_s, spec.options)] = answer
        return out

    def cycle(self, now: datetime, rules: list[AlertRule]) -> None:
        if not rules:
            return
        answers = self.answers(plan_queries(rules), now)
        result = evaluate(now, rules, answers, self.instances, {})
        for d in result.decisions:
            if d.kind is NotificationKind.FIRING:
                kind = result.rules[d.rule_id].kind.value
                self.alerts.append(Alert(kind, d.account_id, d.key_id, now, d.value, d.evidence))
        for inst in result.changed.values():
            self.instances.setdefault(inst.rule_id, {})[inst.key_id] = inst
        self.cycles += 1


CADENCES: dict[RuleKind, timedelta] = {
    RuleKind.USAGE_SPIKE: timedelta(minutes=30),
    RuleKind.UNKNOWN_IP: timedelta(minutes=60),
    RuleKind.ERROR_PATTERN: timedelta(minutes=30),
    RuleKind.CREDENTIAL_STUFFING: timedelta(minutes=10),
    RuleKind.STALE_KEY_PRESENTED: timedelta(minutes=15),
}
"""Simulated time between evaluations of each kind (see the module docstring)."""
STEP = timedelta(minutes=5)


def run(
    client: Client,
    rules: list[AlertRule],
    start: datetime,
    end: datetime,
    cadences: dict[RuleKind, timedelta],
) -> Replay:
    """Evaluate `rules` from `start` (exclusive) to `end`, each kind at its cadence."""
    replay = Replay(client)
    now = start
    began = time.perf_counter()
    last_report = began
    total = (end - start) / STEP
    step = 0
    while now < end:
        now += STEP
        step += 1
        due = {k for k, c in cadences.items() if (now - start) % c == timedelta(0)}
        replay.cycle(now, [r for r in rules if r.kind in due])
        if time.perf_counter() - last_report > 15:
            last_report = time.perf_counter()
            print(
                f"replay: {now:%m-%d %H:%M} ({step / total:.0%}), {len(replay.alerts)} alerts, "
                f"{last_report - began:.0f} s",
                file=sys.stderr,
            )
    return replay


def ips_per_key_hour(
    client: Client, start: datetime, end: datetime
) -> dict[tuple[str, str], list[tuple[datetime, float, int]]]:
    """Distinct client IPs per key and clock hour in [start, end), at the hour's end (the
    unknown_ip baseline; one query over requests_raw, the bench's own read)."""
    rows = client.query(
        "SELECT account_id, key_id, toStartOfHour(occurred_at) AS h, uniqExact(client_ip) "
        "FROM requests_raw WHERE occurred_at >= {s:DateTime64(3, 'UTC')} "
        "AND occurred_at < {e:DateTime64(3, 'UTC')} GROUP BY account_id, key_id, h ORDER BY h",
        parameters={"s": start, "e": end},
    ).result_rows
    out: dict[tuple[str, str], list[tuple[datetime, float, int]]] = defaultdict(list)
    for account, key, hour, n in rows:
        out[(str(account), str(key))].append((as_utc(hour) + timedelta(hours=1), float(n), 1))
    return out


@dataclass
class Binned:
    """Counts per subject in fixed bins from `origin`, with prefix sums for windows."""

    origin: datetime
    bin: timedelta
    bins: int
    prefix: dict[tuple[str, str], tuple[list[int], list[int]]] = field(default_factory=dict)

    def add(self, rows: list[tuple[tuple[str, str], datetime, int, int]]) -> None:
        raw: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        for subject, at, a, b in rows:
            i = int((as_utc(at) - self.origin) / self.bin)
            if 0 <= i < self.bins:
                xs, ys = raw.setdefault(subject, ([0] * self.bins, [0] * self.bins))
                xs[i] += a
                ys[i] += b
        for subject, (xs, ys) in raw.items():
            self.prefix[subject] = (_prefix(xs), _prefix(ys))

    def window(self, subject: tuple[str, str], end: datetime, width: timedelta) -> tuple[int, int]:
        """(sum a, sum b) over the bins of [end - width, end)."""
        px, py = self.prefix.get(subject, ([0], [0]))
        hi = max(0, min(int((end - self.origin) / self.bin), len(px) - 1))
        lo = max(0, hi - int(width / self.bin))
        return px[hi] - px[lo], py[hi] - py[lo]


def _prefix(values: list[int]) -> list[int]:
    out = [0]
    for v in values:
        out.append(out[-1] + v)
    return out


def static_series(
    client: Client,
    keys: list[tuple[str, str]],
    start: datetime,
    end: datetime,
    cadences: dict[RuleKind, timedelta],
) -> tuple[Series3, Series3, Series3]:
    """The static baselines' measures at every evaluation time, from minute rows read once:
    requests per key over 1 h (at usage_spike's cadence; every active key, 0 when
    silent), error share per key over 15 min (at error_pattern's, with its requests as
    the sample count), invalid verifications per client IP over 15 min (at
    credential_stuffing's)."""
    long = cadences[RuleKind.USAGE_SPIKE]
    errors_every = cadences[RuleKind.ERROR_PATTERN]
    short = cadences[RuleKind.CREDENTIAL_STUFFING]
    bin_ = timedelta(minutes=5)
    origin = start - timedelta(hours=1)
    n = int((end - origin) / bin_)
    usage = Binned(origin, bin_, n)
    rows = client.query(
        "SELECT account_id, key_id, toStartOfFiveMinutes(bucket) AS b, sum(requests), "
        "sum(errors_4xx + errors_5xx) FROM usage_rollup WHERE tier = 'minute' "
        "AND bucket >= {s:DateTime('UTC')} AND bucket < {e:DateTime('UTC')} "
        "GROUP BY account_id, key_id, b",
        parameters={"s": origin, "e": end},
    ).result_rows
    usage.add([((str(a), str(k)), b, int(r), int(e)) for a, k, b, r, e in rows])
    bad = Binned(origin, bin_, n)
    rows = client.query(
        "SELECT client_ip, toStartOfFiveMinutes(occurred_at) AS b, sum(count) "
        "FROM verification_outcomes WHERE outcome != 'valid' AND client_ip != '' "
        "AND occurred_at >= {s:DateTime64(3, 'UTC')} AND occurred_at < {e:DateTime64(3, 'UTC')} "
        "GROUP BY client_ip, b",
        parameters={"s": origin, "e": end},
    ).result_rows
    bad.add([(("", f"ip:{ip}"), b, int(c), 0) for ip, b, c in rows])
    hour, quarter = timedelta(hours=1), timedelta(minutes=15)
    requests: Series3 = {}
    for pair in keys:
        points = []
        t = start + long
        while t <= end:
            r, _ = usage.window(pair, t, hour)
            points.append((t, float(r), r))
            t += long
        requests[pair] = points
    errors: Series3 = {}
    for pair in usage.prefix:
        points = []
        t = start + errors_every
        while t <= end:
            r, e = usage.window(pair, t, quarter)
            if r:
                points.append((t, 100.0 * e / r, r))
            t += errors_every
        errors[pair] = points
    invalid: Series3 = {}
    for subject in bad.prefix:
        points = []
        t = start + short
        while t <= end:
            c, _ = bad.window(subject, t, quarter)
            if c:
                points.append((t, float(c), 1))
            elif points and points[-1][1]:
                points.append((t, 0.0, 1))
            t += short
        invalid[subject] = points
    return requests, errors, invalid
