"""Pure cycle planning: one query per (kind, window), and the observations an answer gives."""

from __future__ import annotations

from alerting.planning import QueryAnswer, metric_value, observe, plan_queries
from alerting.ports import WindowStats
from alerting.state import Observation
from schemas.alerts import RuleKind
from tests.samples.alerting import T0, make_rule


def test_one_query_per_kind_and_window_over_all_keys() -> None:
    rules = [
        make_rule(rule_id="a", scope={"type": "key", "key_id": "key_aaaaaa1"}),
        make_rule(rule_id="b", scope={"type": "key", "key_id": "key_bbbbbb1"}),
        make_rule(rule_id="c", scope={"type": "account"}, account_id="acc_other"),
        make_rule(rule_id="d", kind="error_rate", threshold=5),
        make_rule(rule_id="e", window_s="5m"),
        make_rule(rule_id="f", kind="latency", percentile="p99", threshold=500, window_s="5m"),
        make_rule(rule_id="g", kind="latency", percentile="p50", threshold=50, window_s="5m"),
    ]
    queries = plan_queries(rules)
    assert [(q.kind, q.window_s) for q in queries] == [
        (RuleKind.ERROR_RATE, 60),
        (RuleKind.LATENCY, 300),
        (RuleKind.REQUEST_COUNT, 60),
        (RuleKind.REQUEST_COUNT, 300),
    ]
    count_1m = queries[2]
    assert count_1m.accounts == ("acc_other",)
    assert count_1m.key_pairs == (("acc_main", "key_aaaaaa1"), ("acc_main", "key_bbbbbb1"))
    assert queries[1].quantiles and not queries[2].quantiles and queries[0].errors


def test_key_rules_covered_by_an_account_rule_add_no_keys() -> None:
    [q] = plan_queries([make_rule(rule_id="a"), make_rule(rule_id="b", scope={"type": "account"})])
    assert q.accounts == ("acc_main",) and q.key_pairs == ()


def test_metric_values_per_kind() -> None:
    stats = WindowStats(requests=200, errors=30, p50_ms=10, p95_ms=80, p99_ms=300)
    count = make_rule()
    assert metric_value(count, stats) == Observation(200.0, 200)
    assert metric_value(make_rule(kind="error_rate", threshold=5), stats) == Observation(15.0, 200)
    latency = make_rule(kind="latency", percentile="p95", threshold=5)
    assert metric_value(latency, stats) == Observation(80.0, 200)
    assert metric_value(count, None) == Observation(0.0, 0)
    assert metric_value(latency, None) == Observation(None, 0)


def test_account_rule_observes_keys_with_data_and_keys_with_instances() -> None:
    wide = make_rule(scope={"type": "account"})
    answer = QueryAnswer.of(
        {("acc_main", "key_aaaaaa1"): WindowStats(5), ("acc_other", "key_zzzzzz1"): WindowStats(9)}
    )
    seen = dict(observe(wide, answer, ["key_bbbbbb1"], T0))
    assert seen == {"key_aaaaaa1": Observation(5.0, 5), "key_bbbbbb1": Observation(0.0, 0)}
    failed = observe(wide, QueryAnswer.failed("boom"), ["key_bbbbbb1"], T0)
    assert failed == [("key_bbbbbb1", Observation(None, error="boom"))]
