"""SQL pieces for reading `usage_rollup`, the one table holding minute, hour and day rows.

A read names its rows by tier and bucket (`tier_condition`) so ClickHouse can narrow
it through the primary key `(account_id, key_id, tier, bucket)`; times are
rendered as epoch-second integers, which compare with the `DateTime` column directly
and cost the analyzer less than typed parameters (most of a point query is analysis
and planning, not reading). Only integers computed here are rendered into the text;
account and key ids always travel as query parameters.
"""

from __future__ import annotations

from datetime import datetime

from projections.windows import NestedPlan, Span, Tier
from schemas.utc import to_epoch_ms

TABLE = "usage_rollup"

COUNTERS = ("requests", "errors_4xx", "errors_5xx", "renders", "bytes_out")
USAGE_AGGREGATES = (
    f"sumForEach([{', '.join(COUNTERS)}]), quantilesTDigestMerge(0.5, 0.95, 0.99)(latency)"
)
"""Two aggregates: the counters as one array (in `COUNTERS` order) and p50/p95/p99."""


def epoch(t: datetime) -> int:
    """Seconds since the epoch of an aware datetime (whole seconds: rollup times are)."""
    return to_epoch_ms(t) // 1000


def buckets(tier: Tier, spans: tuple[Span, ...]) -> list[int]:
    """The start (epoch seconds) of every row of `tier` in the unit-aligned `spans`."""
    step = int(tier.unit.total_seconds())
    return [t for a, b in spans for t in range(epoch(a), epoch(b), step)]


def tier_condition(plan: NestedPlan) -> str:
    """The rows of every tier that `plan` reads, as one boolean expression.

    Rows are listed (`bucket IN (...)`, ~200 values for 30 days) rather than given as
    ranges: the analyzer and the primary-key search handle one set per tier faster than
    a tree of range comparisons (docs/decisions.md).
    """
    return " OR ".join(
        f"(tier = '{tier.value}' AND bucket IN ({', '.join(map(str, buckets(tier, spans)))}))"
        for tier, spans in plan.spans()
    )


def window_starts(plan: NestedPlan) -> str:
    """An array literal of the windows' starts (epoch seconds), in the requested order."""
    return "[" + ", ".join(str(epoch(s)) for s in plan.starts) + "]"


def in_window(plan: NestedPlan, i: int) -> str:
    """Whether a row that `tier_condition` selected belongs to the i-th window."""
    return f"bucket >= {epoch(plan.starts[i])}"
