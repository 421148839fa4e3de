"""`EvaluationQueries`: window figures per key, the watermark, landed offsets, key names.

Expected values are counted by hand from the seeded requests. Latencies are uniform per
key: the fake's quantiles are exact, ClickHouse's t-digest agrees with them only then.
Whole-account queries count only the keys registered to the account (`register`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.ports import StatsQuery, WindowStats
from schemas.alerts import RuleKind
from tests.contract.backends import Backend, SeededQueries
from tests.fakes.alerting import Requests

MINUTE = datetime.now(UTC).replace(second=0, microsecond=0)
"""The minute the evaluation time falls in (recent: the rollups keep minutes for days)."""
NOW = MINUTE + timedelta(seconds=30)
MS = timedelta(milliseconds=1)


def register(queries: SeededQueries, account_id: str, *key_ids: str) -> None:
    for key_id in key_ids:
        queries.add_key(account_id, key_id, f"name of {key_id}")


def count(
    window_s: int, accounts: tuple[str, ...] = (), key_pairs: tuple[tuple[str, str], ...] = ()
) -> StatsQuery:
    return StatsQuery(RuleKind.REQUEST_COUNT, window_s, accounts, key_pairs)


def test_nothing_seeded_answers_nothing(backend: Backend) -> None:
    queries = backend.queries()
    assert queries.ingest_watermark() is None
    assert queries.ingest_offsets() == {}
    assert queries.key_names(["key_nothing1"]) == {}
    assert queries.window_stats(count(60, ("acc_a",)), NOW) == {}
    assert queries.window_stats(count(60), NOW) == {}


def test_the_window_ends_with_the_minute_of_now(backend: Backend) -> None:
    queries = backend.queries()
    start = MINUTE - timedelta(minutes=4)  # a 5-minute window: 4 whole minutes before this one
    register(queries, "acc_a", "key_aaaaaa1")
    queries.add_requests(
        Requests("acc_a", "key_aaaaaa1", start - MS, count=7),  # just before: out
        Requests("acc_a", "key_aaaaaa1", start, count=1),  # first instant: in
        Requests("acc_a", "key_aaaaaa1", NOW - timedelta(minutes=2), count=2),
        Requests("acc_a", "key_aaaaaa1", MINUTE + timedelta(seconds=59), count=3),  # in
        Requests("acc_a", "key_aaaaaa1", MINUTE + timedelta(minutes=1), count=11),  # out
    )
    assert queries.window_stats(count(300, ("acc_a",)), NOW) == {
        ("acc_a", "key_aaaaaa1"): WindowStats(6)
    }
    assert queries.window_stats(count(60, ("acc_a",)), NOW) == {
        ("acc_a", "key_aaaaaa1"): WindowStats(3)
    }


def test_errors_are_4xx_and_5xx_and_counted_only_for_error_rate(backend: Backend) -> None:
    queries = backend.queries()
    at = NOW - timedelta(minutes=1)
    register(queries, "acc_a", "key_aaaaaa1")
    queries.add_requests(
        Requests("acc_a", "key_aaaaaa1", at, count=4, status=500),
        Requests("acc_a", "key_aaaaaa1", at, count=2, status=404),
        Requests("acc_a", "key_aaaaaa1", at, count=3, status=302),
        Requests("acc_a", "key_aaaaaa1", at, count=5, status=200),
    )
    errors = StatsQuery(RuleKind.ERROR_RATE, 300, ("acc_a",))
    assert queries.window_stats(errors, NOW) == {("acc_a", "key_aaaaaa1"): WindowStats(14, 6)}
    assert queries.window_stats(count(300, ("acc_a",)), NOW) == {
        ("acc_a", "key_aaaaaa1"): WindowStats(14, 0)
    }


def test_latency_quantiles_only_for_latency_queries(backend: Backend) -> None:
    queries = backend.queries()
    at = NOW - timedelta(minutes=1)
    register(queries, "acc_a", "key_fast0001", "key_slow0001")
    queries.add_requests(
        Requests("acc_a", "key_fast0001", at, count=20, latency_ms=12.5),
        Requests("acc_a", "key_slow0001", at, count=30, latency_ms=750.0),
    )
    latency = StatsQuery(RuleKind.LATENCY, 300, ("acc_a",))
    assert queries.window_stats(latency, NOW) == {
        ("acc_a", "key_fast0001"): WindowStats(20, 0, 12.5, 12.5, 12.5),
        ("acc_a", "key_slow0001"): WindowStats(30, 0, 750.0, 750.0, 750.0),
    }
    errors = StatsQuery(RuleKind.ERROR_RATE, 300, ("acc_a",))
    assert queries.window_stats(errors, NOW)[("acc_a", "key_slow0001")] == WindowStats(30, 0)


def test_accounts_read_all_their_keys_key_pairs_only_theirs(backend: Backend) -> None:
    queries = backend.queries()
    at = NOW - timedelta(minutes=1)
    register(queries, "acc_a", "key_aaaaaa1", "key_aaaaaa2")
    queries.add_requests(
        Requests("acc_a", "key_aaaaaa1", at, count=1),
        Requests("acc_a", "key_aaaaaa2", at, count=2),
        Requests("acc_b", "key_bbbbbb1", at, count=3),
        Requests("acc_b", "key_bbbbbb2", at, count=4),
        Requests("acc_c", "key_cccccc1", at, count=5),
    )
    query = count(300, ("acc_a",), key_pairs=(("acc_b", "key_bbbbbb2"),))
    assert queries.window_stats(query, NOW) == {
        ("acc_a", "key_aaaaaa1"): WindowStats(1),
        ("acc_a", "key_aaaaaa2"): WindowStats(2),
        ("acc_b", "key_bbbbbb2"): WindowStats(4),
    }


def test_request_count_over_accounts_adds_their_silent_active_keys(backend: Backend) -> None:
    queries = backend.queries()
    queries.add_key("acc_a", "key_busy0001", "busy")
    queries.add_key("acc_a", "key_quiet001", "quiet")
    queries.add_key("acc_a", "key_revoked1", "revoked", "revoked")
    queries.add_key("acc_a", "key_deleted1", "deleted", "deleted")
    queries.add_key("acc_b", "key_other001", "other")
    queries.add_requests(Requests("acc_a", "key_busy0001", NOW - timedelta(minutes=1), count=3))

    assert queries.window_stats(count(300, ("acc_a",)), NOW) == {
        ("acc_a", "key_busy0001"): WindowStats(3),
        ("acc_a", "key_quiet001"): WindowStats(0),
    }
    errors = StatsQuery(RuleKind.ERROR_RATE, 300, ("acc_a",))
    assert queries.window_stats(errors, NOW) == {("acc_a", "key_busy0001"): WindowStats(3, 0)}
    only_key = count(300, key_pairs=(("acc_b", "key_other001"),))
    assert queries.window_stats(only_key, NOW) == {}


def test_accounts_count_only_the_keys_the_registry_says_they_own(backend: Backend) -> None:
    queries = backend.queries()
    at = NOW - timedelta(minutes=1)
    register(queries, "acc_a", "key_owned001")
    register(queries, "acc_b", "key_bbbbbb1")
    queries.add_key("acc_a", "key_revoked1", "revoked", "revoked")
    queries.add_key("acc_a", "key_deleted1", "deleted", "deleted")
    queries.add_requests(
        Requests("acc_a", "key_owned001", at, count=1),
        Requests("acc_a", "key_revoked1", at, count=2),
        Requests("acc_a", "key_deleted1", at, count=4),
        Requests("acc_a", "key_unknown1", at, count=8),  # never created
        Requests("acc_a", "key_bbbbbb1", at, count=16),  # acc_b's key sent under acc_a
        Requests("acc_b", "key_bbbbbb1", at, count=32),
    )
    errors = StatsQuery(RuleKind.ERROR_RATE, 300, ("acc_a", "acc_b"))
    assert queries.window_stats(errors, NOW) == {
        ("acc_a", "key_owned001"): WindowStats(1, 0),
        ("acc_a", "key_revoked1"): WindowStats(2, 0),
        ("acc_b", "key_bbbbbb1"): WindowStats(32, 0),
    }
    # A key-scoped rule reads the key it names, under its account, as it is.
    named = count(300, key_pairs=(("acc_a", "key_unknown1"),))
    assert queries.window_stats(named, NOW) == {("acc_a", "key_unknown1"): WindowStats(8)}


def test_watermark_and_offsets_follow_the_landed_blocks(backend: Backend) -> None:
    queries = backend.queries()
    queries.land(NOW - timedelta(seconds=10), {0: 99, 1: 5})
    queries.land(NOW - timedelta(seconds=20), {0: 120})
    queries.land(NOW + timedelta(seconds=5), {2: 7}, events=0)  # a block without events
    assert queries.ingest_watermark() == NOW - timedelta(seconds=10)
    assert queries.ingest_offsets() == {0: 120, 1: 5, 2: 7}
    assert backend.queries().ingest_watermark() == NOW - timedelta(seconds=10)


def test_key_names_are_the_newest_non_empty_names(backend: Backend) -> None:
    queries = backend.queries()
    queries.add_key("acc_a", "key_aaaaaa1", "Production")
    queries.add_key("acc_a", "key_aaaaaa1", "Production EU")
    queries.add_key("acc_a", "key_aaaaaa2", "")
    queries.add_key("acc_a", "key_aaaaaa3", "Old", "revoked")
    asked = ["key_aaaaaa1", "key_aaaaaa2", "key_aaaaaa3", "key_unknown1"]
    assert queries.key_names(asked) == {"key_aaaaaa1": "Production EU", "key_aaaaaa3": "Old"}
    assert queries.key_names([]) == {}


def test_long_windows_are_exact_to_the_minute(backend: Backend) -> None:
    queries = backend.queries()
    day_start = MINUTE + timedelta(minutes=1) - timedelta(days=1)
    register(queries, "acc_a", "key_aaaaaa1")
    queries.add_requests(
        Requests("acc_a", "key_aaaaaa1", NOW - timedelta(hours=3), count=1),
        Requests("acc_a", "key_aaaaaa1", day_start, count=2),  # first minute of the day: in
        Requests("acc_a", "key_aaaaaa1", day_start - MS, count=4),  # just before: out of 1d
        Requests("acc_a", "key_aaaaaa1", NOW - timedelta(days=2, hours=5), count=8),
        Requests("acc_a", "key_aaaaaa1", NOW - timedelta(days=4), count=16),  # out of both
    )
    one_day = queries.window_stats(count(86_400, ("acc_a",)), NOW)
    three_days = queries.window_stats(count(3 * 86_400, ("acc_a",)), NOW)
    assert one_day == {("acc_a", "key_aaaaaa1"): WindowStats(3)}
    assert three_days == {("acc_a", "key_aaaaaa1"): WindowStats(15)}
