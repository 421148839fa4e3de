"""`infra.console.key_list_view`: the API Keys page's rows, badges, page choice, plan line
and sparkline coordinates, judged at a fixed `now` (pure; ledgers folded from valid
event chains)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.console.key_list_view import (
    SPARK_DAYS,
    KeyQuery,
    KeyUsage,
    Listed,
    actions_for,
    choose_page,
    key_row,
    listed_keys,
    plan_view,
    spark,
    spark_points,
    status_badges,
)
from infra.http.key_views import KeyOut
from projections.key_activity import KeyActivity
from schemas.key_ledger import AccountLedger, apply
from schemas.keys import KeyAccess, KeyType
from schemas.plans import Plan
from tests.samples.keys import Chain

NOW = datetime(2025, 3, 14, 15, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def _ledger(chain: Chain) -> AccountLedger:
    ledger = None
    for event in chain.events:
        ledger, refusal = apply(ledger, event)
        assert refusal is None
    assert ledger is not None
    return ledger


def _chain(plan: Plan = Plan.FREE) -> Chain:
    return Chain("acc_view", plan, at=NOW - 30 * DAY)


def _key(ledger: AccountLedger, key_id: str, activity: KeyActivity | None = None) -> KeyOut:
    return KeyOut.of_record(ledger.keys[key_id], None, NOW, activity)


def _usage(renders: int = 0) -> KeyUsage:
    return KeyUsage(renders_today=renders)


def test_spark_points_scale_the_peak_to_the_top_and_zero_to_the_bottom() -> None:
    points = spark_points([0, 5, 10], width=20, height=12, pad=2)
    assert points == "2.0,10.0 10.0,6.0 18.0,2.0"
    assert spark_points([0, 0, 0], width=20, height=12, pad=2) == "2.0,10.0 10.0,10.0 18.0,10.0"
    assert spark_points([7], width=20, height=12, pad=2) == "2.0,2.0"
    assert spark_points([]) == ""


def test_spark_has_one_point_per_day_and_says_its_numbers() -> None:
    values = tuple(range(SPARK_DAYS))
    drawn = spark(KeyUsage(per_day=values))
    assert len(drawn.points.split()) == SPARK_DAYS
    assert drawn.label == "Requests per day, last 30 days: 435 in total, at most 29 in a day"
    assert spark(_usage()).label == "No requests in the last 30 days"


def test_badges_of_an_active_key_come_from_usage_and_alerts() -> None:
    chain = _chain()
    chain.create_key("key_testkey01", "Preview", KeyType.TEST, at=NOW - 2 * DAY)
    chain.create_key("key_livekey01", "Web", KeyType.LIVE, at=NOW - 2 * DAY)
    ledger = _ledger(chain)
    test, live = _key(ledger, "key_testkey01"), _key(ledger, "key_livekey01")

    def kinds(key: KeyOut, renders: int, firing: set[str]) -> list[str]:
        return [b.kind for b in status_badges(key, _usage(renders), frozenset(firing), NOW)]

    assert kinds(test, 99, set()) == ["active"]
    assert kinds(test, 100, set()) == ["active", "over_quota"]
    assert kinds(live, 500, set()) == ["active"]  # live keys have no render quota
    assert kinds(live, 0, {"error_pattern"}) == ["active", "elevated_errors"]
    assert kinds(live, 0, {"error_rate", "unknown_ip"}) == [
        "active",
        "elevated_errors",
        "unknown_ip",
    ]
    assert kinds(live, 0, {"usage_spike"}) == ["active"]


def test_a_revoked_key_shows_only_its_status() -> None:
    chain = _chain()
    chain.create_key("key_gonekey01", "Old", KeyType.TEST, at=NOW - 3 * DAY)
    chain.revoke("key_gonekey01", at=NOW - DAY)
    key = _key(_ledger(chain), "key_gonekey01")
    badges = status_badges(key, _usage(150), frozenset({"unknown_ip"}), NOW)
    assert [(b.kind, b.label) for b in badges] == [("revoked", "revoked")]
    assert badges[0].title.startswith("Revoked 2025-03-13 15:30 UTC")


def test_a_rolled_key_is_expiring_soon_and_offers_no_second_roll() -> None:
    chain = _chain()
    chain.create_key("key_oldkey001", "API", at=NOW - 3 * DAY)
    chain.roll("key_oldkey001", "key_newkey001", timedelta(hours=6), at=NOW - timedelta(hours=1))
    ledger = _ledger(chain)
    old = key_row(_key(ledger, "key_oldkey001"), None, frozenset(), NOW)
    assert [b.kind for b in old.badges] == ["active", "expiring_soon"]
    assert old.badges[1].title == "Expires in 5 h (2025-03-14 20:30 UTC)"
    assert old.actions == {"rename", "revoke"}
    assert old.note == "rolled to key_newkey001"
    new = key_row(_key(ledger, "key_newkey001"), None, frozenset(), NOW)
    assert new.actions == {"rename", "roll", "revoke"}
    assert new.note == "rolled from key_oldkey001"


def test_actions_follow_the_key_service_rules() -> None:
    assert actions_for("active", None) == {"rename", "roll", "revoke"}
    assert actions_for("revoked", None) == {"rename", "delete"}
    assert actions_for("expired", None) == {"rename", "delete"}


def test_a_row_shows_times_counts_type_and_access() -> None:
    chain = _chain(Plan.PRO)
    chain.create_key("key_adminkey1", "Ops", KeyType.LIVE, KeyAccess.ADMIN, at=NOW - 40 * DAY)
    ledger = _ledger(chain)
    used = KeyActivity(NOW - timedelta(minutes=7), "198.51.100.7", 0, 0, 0, 0)
    row = key_row(
        _key(ledger, "key_adminkey1", used), KeyUsage(per_day=(3,) * SPARK_DAYS), frozenset(), NOW
    )
    assert (row.type_badge.kind, row.access_badge and row.access_badge.label) == ("live", "admin")
    assert (row.created, row.last_used, row.last_used_ip) == (
        "2025-02-02",
        "7 min ago",
        "198.51.100.7",
    )
    assert row.hint.endswith("…") and row.hint.startswith("pk_live_")
    assert row.requests_24h == "0"
    assert row.path == "/keys/key_adminkey1"
    assert "90 in total" in row.spark.label


def test_counts_come_from_the_usage_read_grouped_by_thousands() -> None:
    chain = _chain()
    chain.create_key("key_busykey01", "Busy", at=NOW - 3 * DAY)
    key = _key(_ledger(chain), "key_busykey01")
    row = key_row(key, KeyUsage(windows=(1234, 56789, 1234567)), frozenset(), NOW)
    assert (row.requests_24h, row.requests_7d, row.requests_30d) == ("1,234", "56,789", "1,234,567")
    assert row.access_badge is None
    unused = key_row(key, None, frozenset(), NOW)
    assert (unused.requests_30d, unused.last_used) == ("0", "never")
    assert unused.spark.points.split()[0] == "2.0,26.0"


def _listed(n: int) -> list[Listed]:
    return [
        Listed(f"key_k{i:05d}", f"Service {i}", NOW - i * timedelta(hours=1), "active")
        for i in range(n)
    ]


def test_the_page_is_newest_first_and_bounded() -> None:
    keys = _listed(120)
    first = choose_page(keys, KeyQuery())
    assert first.key_ids[:2] == ["key_k00000", "key_k00001"]
    assert (first.page, first.pages, first.first, first.last, first.matched) == (1, 3, 1, 50, 120)
    last = choose_page(keys, KeyQuery(page=9))
    assert (last.page, last.first, last.last) == (3, 101, 120)
    assert last.key_ids[-1] == "key_k00119"


def test_the_filter_matches_name_or_key_id_and_status() -> None:
    keys = [*_listed(12), Listed("key_zzrevoked", "Legacy", NOW - 99 * DAY, "revoked")]
    by_name = choose_page(keys, KeyQuery.of("service 1", "", 1))
    assert by_name.key_ids == ["key_k00001", "key_k00010", "key_k00011"]
    assert choose_page(keys, KeyQuery.of("ZZREV", "", 1)).key_ids == ["key_zzrevoked"]
    revoked = choose_page(keys, KeyQuery.of("", "revoked", 1))
    assert (revoked.key_ids, revoked.matched, revoked.total) == (["key_zzrevoked"], 1, 13)
    assert choose_page(keys, KeyQuery.of("nothing", "", 1)).first == 0


def test_the_query_tolerates_any_url_and_links_its_pages() -> None:
    assert KeyQuery.of(None, "bogus", "x") == KeyQuery()
    assert KeyQuery.of(" web ", "Revoked", "-3") == KeyQuery("web", "revoked", 1)
    query = KeyQuery("web app", "active", 2)
    assert query.href(3) == "?q=web+app&status=active&page=3"
    assert query.href(1) == "?q=web+app&status=active"
    assert KeyQuery().href() == ""


def test_listed_keys_leave_deleted_ones_out_and_add_the_projection_only_ones() -> None:
    chain = _chain()
    chain.create_key("key_keptkey01", "Kept", at=NOW - 3 * DAY)
    chain.create_key("key_deadkey01", "Dead", at=NOW - 3 * DAY)
    chain.revoke("key_deadkey01", at=NOW - 2 * DAY)
    chain.delete("key_deadkey01", at=NOW - DAY)
    ledger = _ledger(chain)
    only = _key(ledger, "key_keptkey01").model_copy(update={"key_id": "key_projonly1"})
    listed = listed_keys(ledger.keys.values(), [only], NOW)
    assert [k.key_id for k in listed] == ["key_keptkey01", "key_projonly1"]


def test_the_plan_line_and_limits_of_a_free_account_at_its_live_limit() -> None:
    chain = _chain()
    chain.create_key("key_live00001", "A", at=NOW - 3 * DAY)
    chain.create_key("key_live00002", "B", KeyType.LIVE, KeyAccess.READ_ONLY, at=NOW - 3 * DAY)
    chain.create_key("key_admin0001", "C", KeyType.LIVE, KeyAccess.ADMIN, at=NOW - 3 * DAY)
    plan = plan_view(_ledger(chain), NOW)
    assert plan.text == "2 of 2 live keys, 0 of 5 test keys and 1 of 5 admin keys on Free"
    assert plan.full("live") and not plan.full("test") and not plan.full("admin")
    assert plan.classes["live"].reason == "Free allows 2 live keys: revoke one or upgrade the plan"
    assert plan.classes["test"].reason == ""


def test_an_expired_key_frees_its_place_and_unlimited_plans_say_so() -> None:
    chain = _chain(Plan.ENTERPRISE)
    chain.create_key("key_live00001", "A", at=NOW - 3 * DAY)
    chain.create_key("key_live00002", "B", at=NOW - 3 * DAY)
    chain.roll("key_live00002", "key_live00003", timedelta(hours=1), at=NOW - 2 * DAY)
    plan = plan_view(_ledger(chain), NOW)
    assert (
        plan.text
        == "2 live keys (no limit), 0 test keys (no limit) and 0 of 5 admin keys on Enterprise"
    )
    assert not plan.full("live")
