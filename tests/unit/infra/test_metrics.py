"""`infra.http.metrics`: the consumer lag from end offsets and watermarks, and the text
exposition of a snapshot."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from infra.http.metrics import MetricsSnapshot, consumer_lag, render


def test_lag_counts_records_past_each_watermark() -> None:
    # partition 0: offsets 0..9 exist, 0..6 ingested; 1: all 5 ingested; 2: none of 4
    assert consumer_lag({0: 10, 1: 5, 2: 4}, {0: 6, 1: 4}) == 3 + 0 + 4


def test_lag_is_zero_for_empty_partitions_and_never_negative() -> None:
    assert consumer_lag({0: 0, 1: 3}, {1: 7}) == 0
    assert consumer_lag({}, {0: 3}) == 0


def _samples(snapshot: MetricsSnapshot) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(render(snapshot).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(s.labels.values())] = s.value
    return out


def test_render_shows_every_counter_of_the_snapshot() -> None:
    snap = MetricsSnapshot(
        events_ingested=450,
        eval_cycles=7,
        eval_failed_cycles=1,
        eval_cycle_seconds=[0.5, 0.25],
        deliveries_by_outcome={"delivered": 3, "retryable": 2},
        consumer_lag=12,
        freshness_seconds=1.5,
    )
    samples = _samples(snap)
    assert samples["keypulse_events_ingested_total"] == {(): 450}
    assert samples["keypulse_eval_cycles_total"] == {(): 7}
    assert samples["keypulse_eval_failed_cycles_total"] == {(): 1}
    assert samples["keypulse_eval_cycle_seconds_count"] == {(): 2}
    assert samples["keypulse_eval_cycle_seconds_sum"] == {(): 0.75}
    assert samples["keypulse_deliveries_total"] == {("delivered",): 3, ("retryable",): 2}
    assert samples["keypulse_consumer_lag"] == {(): 12}
    assert samples["keypulse_data_freshness_seconds"] == {(): 1.5}


def test_unknown_lag_and_freshness_are_left_out() -> None:
    samples = _samples(MetricsSnapshot())
    assert "keypulse_consumer_lag" not in samples
    assert "keypulse_data_freshness_seconds" not in samples
    assert samples["keypulse_eval_cycles_total"] == {(): 0}
