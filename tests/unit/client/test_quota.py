"""The render quota: exact within one process (threads included), others' counts shared,
the UTC day, the RateLimit headers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from streams.client.quota import RenderQuota, seconds_to_reset, utc_day
from streams.client.ratelimit_headers import ratelimit_headers

NOON = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def test_one_process_admits_exactly_100_of_150_across_threads() -> None:
    quota = RenderQuota()
    admitted: list[bool] = []
    lock = threading.Lock()

    def renders() -> None:
        for _ in range(25):
            state = quota.admit("key_a", NOON)
            with lock:
                admitted.append(state.admitted)

    threads = [threading.Thread(target=renders) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 150
    assert sum(admitted) == 100
    assert quota.used("key_a", NOON) == 100
    assert quota.admit("key_b", NOON).remaining == 99  # per key


def test_others_latest_counts_are_added_and_only_grow() -> None:
    quota = RenderQuota(process_id="me")
    day = utc_day(NOON)
    quota.merge("other", "key_a", day, 30)
    quota.merge("other", "key_a", day, 20)  # an older record read later: ignored
    quota.merge("third", "key_a", day, 60)
    quota.merge("me", "key_a", day, 99)  # our own echo: ignored
    quota.merge("other", "key_a", day - 1, 99)  # yesterday: another slot
    assert quota.used("key_a", NOON) == 90
    states = [quota.admit("key_a", NOON) for _ in range(12)]
    assert sum(s.admitted for s in states) == 10
    assert quota.take_changes() == [("key_a", day, 10)]
    assert quota.take_changes() == []


def test_the_day_is_the_utc_day() -> None:
    quota = RenderQuota()
    late = datetime(2025, 3, 4, 23, 59, 59, tzinfo=UTC)
    for _ in range(100):
        quota.admit("key_a", late)
    assert not quota.admit("key_a", late).admitted
    assert seconds_to_reset(late) == 1
    midnight = datetime(2025, 3, 5, tzinfo=UTC)
    assert seconds_to_reset(midnight) == 86_400
    assert quota.admit("key_a", midnight).admitted
    berlin = datetime(2025, 3, 5, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 23:30 UTC
    assert utc_day(berlin) == utc_day(late)
    assert utc_day(midnight - timedelta(microseconds=1)) == utc_day(late)


def test_ratelimit_headers() -> None:
    quota = RenderQuota(limit=2)
    first = ratelimit_headers(quota.admit("key_a", NOON))
    assert first == {
        "RateLimit-Policy": '"renders";q=2;w=86400',
        "RateLimit": '"renders";r=1;t=43200',
    }
    quota.admit("key_a", NOON)
    refused = ratelimit_headers(quota.admit("key_a", NOON))
    assert refused["RateLimit"] == '"renders";r=0;t=43200'
    assert refused["Retry-After"] == "43200"
