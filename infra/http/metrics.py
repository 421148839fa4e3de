"""Prometheus metrics for one worker: a `MetricsSnapshot` of its counters, rendered in the
text exposition format through a registry of its own (no global state).

Counters are totals since the worker started; the `*_seconds` summaries cover the most
recent inserts and cycles only. `consumer_lag` is None when no worker consumes requests
here (server mode) or the broker did not answer. `unattributed_events` counts the landed
request events the key registry attributes to no account, by reason (`unknown_key`,
`account_mismatch`), as the worker recorded them in `key_anomalies`. `auth_failures` counts
the brute-force limit's work in this API process (`infra.http.auth_throttle`) by what it
counts by (`address`: the caller's; `client_ip`: of `POST /verify`'s body) and outcome
(`failed`: a guessed credential, `slowed`: its answer waited, `refused`: 429).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

Family = CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily


@dataclass
class MetricsSnapshot:
    events_ingested: int = 0
    dead_letters: int = 0
    blocks_written: int = 0
    last_batch_events: int = 0
    insert_seconds: list[float] = field(default_factory=list)
    freshness_seconds: float | None = None
    consumer_lag: int | None = None
    eval_cycles: int = 0
    eval_failed_cycles: int = 0
    eval_cycle_seconds: list[float] = field(default_factory=list)
    deliveries_by_outcome: dict[str, int] = field(default_factory=dict)
    unattributed_events: dict[str, int] = field(default_factory=dict)
    auth_failures: dict[tuple[str, str], int] = field(default_factory=dict)


def consumer_lag(end_offsets: Mapping[int, int], watermarks: Mapping[int, int]) -> int:
    """Records of the requests partitions not yet in ClickHouse.

    `end_offsets` are the broker's next offsets per partition; `watermarks` the highest
    offset ClickHouse holds per partition (absent: none yet).
    """
    return sum(max(0, end - 1 - watermarks.get(p, -1)) for p, end in end_offsets.items())


def _ingest(s: MetricsSnapshot) -> Iterator[Family]:
    yield CounterMetricFamily(
        "keypulse_events_ingested", "Request events written to ClickHouse", s.events_ingested
    )
    yield CounterMetricFamily(
        "keypulse_dead_letters", "Messages sent to the dead-letter topic", s.dead_letters
    )
    yield CounterMetricFamily(
        "keypulse_insert_blocks", "Ingest inserts into ClickHouse", s.blocks_written
    )
    yield GaugeMetricFamily(
        "keypulse_batch_events", "Events in the last ingest insert", s.last_batch_events
    )
    yield SummaryMetricFamily(
        "keypulse_insert_seconds",
        "Duration of recent ingest inserts",
        count_value=len(s.insert_seconds),
        sum_value=sum(s.insert_seconds),
    )
    if s.freshness_seconds is not None:
        yield GaugeMetricFamily(
            "keypulse_data_freshness_seconds",
            "Age of the newest event visible to queries",
            s.freshness_seconds,
        )
    if s.consumer_lag is not None:
        yield GaugeMetricFamily(
            "keypulse_consumer_lag", "Request records not yet ingested", s.consumer_lag
        )


def _attribution(s: MetricsSnapshot) -> Iterator[Family]:
    unattributed = CounterMetricFamily(
        "keypulse_unattributed_events",
        "Landed request events counted in no account's usage, by reason",
        labels=["reason"],
    )
    for reason, count in sorted(s.unattributed_events.items()):
        unattributed.add_metric([reason], count)
    yield unattributed
    auth = CounterMetricFamily(
        "keypulse_auth_failures",
        "Failed authentications (brute-force limit) by what counted them and outcome",
        labels=["by", "outcome"],
    )
    for (by, outcome), count in sorted(s.auth_failures.items()):
        auth.add_metric([by, outcome], count)
    yield auth


def _alerting(s: MetricsSnapshot) -> Iterator[Family]:
    yield CounterMetricFamily("keypulse_eval_cycles", "Evaluator cycles completed", s.eval_cycles)
    yield CounterMetricFamily(
        "keypulse_eval_failed_cycles", "Evaluator cycles that failed", s.eval_failed_cycles
    )
    yield SummaryMetricFamily(
        "keypulse_eval_cycle_seconds",
        "Duration of recent evaluator cycles",
        count_value=len(s.eval_cycle_seconds),
        sum_value=sum(s.eval_cycle_seconds),
    )
    deliveries = CounterMetricFamily(
        "keypulse_deliveries", "Notification delivery attempts by outcome", labels=["outcome"]
    )
    for outcome, count in sorted(s.deliveries_by_outcome.items()):
        deliveries.add_metric([outcome], count)
    yield deliveries


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Family]:
        yield from _ingest(self._snapshot)
        yield from _attribution(self._snapshot)
        yield from _alerting(self._snapshot)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(snapshot: MetricsSnapshot) -> bytes:
    """`snapshot` in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
