"""Prometheus metrics for one worker, in a registry of its own (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector


@dataclass
class MetricsSnapshot:
    events_ingested: int = 0
    dead_letters: int = 0
    blocks_written: int = 0
    last_batch_events: int = 0
    insert_seconds: list[float] = field(default_factory=list)
    freshness_seconds: float | None = None
    consumer_lag: int | None = None
    eval_cycle_seconds: list[float] = field(default_factory=list)
    deliveries_by_outcome: dict[str, int] = field(default_factory=dict)


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily]:
        s = self._snapshot()
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


def metrics_registry(snapshot: Callable[[], MetricsSnapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
