"""`bench.misuse`'s scoring: alerts matched to labels, per-detector figures, and the static
baselines tuned on the same labels (pure).

Matching: an alert matches a label of the same kind, account and subject when its time
lies in [label.start - 1 min, label.end + grace] (grace: the rule's window plus one
evaluation step, so the last evaluated window that still holds the anomaly counts). A
label is found when at least one alert matches it; an alert matching no label is a false
alert. precision = matching alerts / alerts, recall = found labels / labels,
false alerts per key-week = false alerts / (keys x evaluated weeks).

Baselines: a static threshold's alerts follow the state machine of a rule with `for_s` 0
and no keep-firing: an episode opens at an evaluation whose value reaches the threshold
after one below it (or after none: a new instance), stays open while it holds, and
evaluations without data (below `min_requests`) leave it as it is. A rising step from
value a to value b therefore opens an episode for exactly the thresholds in (a, b], so
one pass over each series scores the whole threshold grid. The baseline is one grid
threshold for every account's rule, the one with the best F1 on all labels (ties: fewer
false alerts, then the higher threshold); `per_account` lets each account's rule take its
own best on its account's labels instead (with about one label per account and kind that
is an oracle, reported beside it). Stuffing's baseline watches client IPs, matched on
the IP alone.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.misuse_traffic import Label

Matcher = dict[tuple[str, str, str], list[int]]


@dataclass(frozen=True, slots=True)
class Figures:
    alerts: int
    matched_alerts: int
    labels: int
    found: int
    key_weeks: float

    @property
    def false_alerts(self) -> int:
        return self.alerts - self.matched_alerts

    @property
    def precision(self) -> float:
        return self.matched_alerts / self.alerts if self.alerts else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_per_key_week(self) -> float:
        return self.false_alerts / self.key_weeks if self.key_weeks else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "alerts": self.alerts,
            "false_alerts": self.false_alerts,
            "false_alerts_per_key_week": round(self.false_per_key_week, 5),
            "labels": self.labels,
            "found": self.found,
        }


@dataclass
class LabelIndex:
    labels: Sequence[Label]
    grace: dict[str, timedelta]
    by_subject: Matcher = field(default_factory=dict)
    by_ip: Matcher = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, lb in enumerate(self.labels):
            self.by_subject.setdefault((lb.kind, lb.account_id, lb.subject), []).append(i)
            self.by_ip.setdefault((lb.kind, "", lb.subject), []).append(i)

    def match(self, kind: str, account: str, subject: str, at: datetime,
              ignore_account: bool = False) -> list[int]:  # fmt: skip
        index = self.by_ip if ignore_account else self.by_subject
        found = index.get((kind, "" if ignore_account else account, subject), [])
        grace = self.grace[kind]
        return [
            i
            for i in found
            if self.labels[i].start - timedelta(minutes=1) <= at <= self.labels[i].end + grace
        ]

    def count(self, kind: str, account: str | None = None) -> int:
        return sum(
            lb.kind == kind and (account is None or lb.account_id == account) for lb in self.labels
        )


def detector_figures(
    index: LabelIndex, alerts: Iterable[Any], kind: str, key_weeks: float,
    label_filter: Any = None,
) -> tuple[Figures, list[Any], list[Label]]:  # fmt: skip
    """The detector's figures, its false alerts and its missed labels."""
    wanted = [
        i for i, lb in enumerate(index.labels)
        if lb.kind == kind and (label_filter is None or label_filter(lb))
    ]  # fmt: skip
    wanted_set = set(wanted)
    found: set[int] = set()
    n = matched = 0
    false: list[Any] = []
    for a in alerts:
        if a.kind != kind:
            continue
        n += 1
        hits = index.match(kind, a.account_id, a.subject, a.at)
        if hits:
            matched += 1
            found.update(h for h in hits if h in wanted_set)
        else:
            false.append(a)
    missed = [index.labels[i] for i in wanted if i not in found]
    if label_filter is not None:  # recall of a subset: precision is not its own
        return Figures(n, matched, len(wanted), len(found & wanted_set), key_weeks), false, missed
    return Figures(n, matched, len(wanted), len(found), key_weeks), false, missed


@dataclass
class _Grid:
    thresholds: list[float]
    alerts: list[int]
    matched: list[int]
    found: list[set[int]]

    @classmethod
    def of(cls, thresholds: list[float]) -> _Grid:
        g = len(thresholds)
        return cls(thresholds, [0] * g, [0] * g, [set() for _ in range(g)])


def _grid_pass(
    grid: _Grid,
    points: Sequence[tuple[datetime, float, int]],
    min_samples: int,
    hit: Any,
) -> None:
    """Score one subject's series for every threshold of the grid (see module doc)."""
    prev = -math.inf
    th = grid.thresholds
    for at, value, samples in points:
        if samples < min_samples:
            continue  # no data: an open episode stays open, none opens
        if value > prev:
            lo = bisect.bisect_right(th, prev) if prev > -math.inf else 0
            hi = bisect.bisect_right(th, value)
            if hi > lo:
                hits = hit(at)
                for j in range(lo, hi):
                    grid.alerts[j] += 1
                    if hits:
                        grid.matched[j] += 1
                        grid.found[j].update(hits)
        prev = value


def tune(
    index: LabelIndex,
    kind: str,
    series: dict[tuple[str, str], list[tuple[datetime, float, int]]],
    thresholds: list[float],
    key_weeks: float,
    min_samples: int = 0,
    per_account: bool = False,
    ignore_account: bool = False,
) -> tuple[Figures, dict[str, float]]:
    """The baseline's figures with one best threshold for every account's rule, or with
    each account's own best (`per_account`); `ignore_account` matches on the subject
    alone (client IPs, which belong to no account)."""
    grids: dict[str, _Grid] = defaultdict(lambda: _Grid.of(thresholds))
    for (account, subject), points in series.items():
        group = account if per_account else ""

        def hit(at: datetime, a: str = account, s: str = subject) -> list[int]:
            return index.match(kind, a, s, at, ignore_account=ignore_account)

        _grid_pass(grids[group], points, min_samples, hit)
    groups = sorted({lb.account_id for lb in index.labels if lb.kind == kind} | set(grids))
    if not per_account:
        groups = [""]
    total = Figures(0, 0, 0, 0, key_weeks)
    chosen: dict[str, float] = {}
    for group in groups:
        grid = grids[group]
        labels = index.count(kind, group if per_account else None)
        best: tuple[float, int, float] | None = None
        best_j = len(thresholds) - 1
        for j, theta in enumerate(thresholds):
            f = Figures(grid.alerts[j], grid.matched[j], labels, len(grid.found[j]), key_weeks)
            score = (f.f1, -f.false_alerts, theta)
            if best is None or score > best:
                best, best_j = score, j
        chosen[group] = thresholds[best_j]
        total = Figures(
            total.alerts + grid.alerts[best_j],
            total.matched_alerts + grid.matched[best_j],
            total.labels + labels,
            total.found + len(grid.found[best_j]),
            key_weeks,
        )
    return total, chosen


def log_grid(lo: float, hi: float, n: int) -> list[float]:
    if hi <= lo:
        return [lo]
    r = (hi / lo) ** (1 / (n - 1))
    return sorted({round(lo * r**i, 1) for i in range(n)})
