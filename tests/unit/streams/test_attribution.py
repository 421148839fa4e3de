"""The pure attribution decisions (`streams.worker.attribution`): mismatches at once,
unknown keys after their grace, running totals recorded only when they grow, nothing
counted twice across reasons or restarts."""

from __future__ import annotations

from streams.worker.attribution import Attribution
from streams.worker.ports import Anomaly, PairTotal, UnattributedEvents, UnattributedReason

UNKNOWN = UnattributedReason.UNKNOWN_KEY
MISMATCH = UnattributedReason.ACCOUNT_MISMATCH


def total(account: str, key: str, events: int, owner: str | None, newest: int = 1000) -> PairTotal:
    return PairTotal(account, key, events, newest, owner)


def found(
    account: str,
    key: str,
    reason: UnattributedReason,
    events: int,
    owner: str | None = None,
    newest: int = 1000,
) -> UnattributedEvents:
    return UnattributedEvents(account, key, reason, events, newest, owner)


def test_a_key_of_another_account_is_recorded_at_once_and_again_when_it_grows() -> None:
    attr = Attribution(grace_s=60)
    assert attr.decide([total("acc_a", "key_b1", 3, "acc_b")], now=0) == [
        found("acc_a", "key_b1", MISMATCH, 3, "acc_b")
    ]
    assert attr.decide([total("acc_a", "key_b1", 3, "acc_b")], now=5) == []  # unchanged
    assert attr.decide([total("acc_a", "key_b1", 9, "acc_b", newest=2000)], now=10) == [
        found("acc_a", "key_b1", MISMATCH, 9, "acc_b", newest=2000)
    ]
    assert attr.totals() == {"unknown_key": 0, "account_mismatch": 9}


def test_an_unknown_key_waits_its_grace_then_follows_its_total() -> None:
    attr = Attribution(grace_s=30)
    assert attr.decide([total("acc_a", "key_x", 2, None)], now=100) == []
    assert attr.decide([total("acc_a", "key_x", 7, None)], now=129.9) == []
    assert attr.waiting == 1
    assert attr.decide([total("acc_a", "key_x", 8, None)], now=130) == [
        found("acc_a", "key_x", UNKNOWN, 8)
    ]
    assert attr.waiting == 0
    # Recorded once: growth is recorded without a new grace.
    assert attr.decide([total("acc_a", "key_x", 12, None)], now=131) == [
        found("acc_a", "key_x", UNKNOWN, 12)
    ]
    assert attr.totals() == {"unknown_key": 12, "account_mismatch": 0}


def test_a_key_created_within_the_grace_is_never_recorded() -> None:
    attr = Attribution(grace_s=30)
    assert attr.decide([total("acc_a", "key_late", 9, None)], now=0) == []
    assert attr.decide([], now=10) == []  # created: the pair is attributed now
    assert attr.waiting == 0
    # Unknown again later (not possible for a real registry) starts a new grace.
    assert attr.decide([total("acc_a", "key_late", 9, None)], now=35) == []
    assert attr.decide([total("acc_a", "key_late", 9, None)], now=65) == [
        found("acc_a", "key_late", UNKNOWN, 9)
    ]


def test_an_attributed_total_is_ignored() -> None:
    attr = Attribution(grace_s=0)
    assert attr.decide([total("acc_a", "key_1", 5, "acc_a")], now=0) == []
    assert attr.totals() == {"unknown_key": 0, "account_mismatch": 0}


def test_events_found_unknown_are_not_counted_again_as_a_mismatch() -> None:
    attr = Attribution(grace_s=0)
    assert attr.decide([total("acc_a", "key_k", 10, None)], now=0) == [
        found("acc_a", "key_k", UNKNOWN, 10)
    ]
    # The key was then created by another account: only the events beyond the 10.
    assert attr.decide([total("acc_a", "key_k", 14, "acc_b")], now=1) == [
        found("acc_a", "key_k", MISMATCH, 4, "acc_b")
    ]
    assert attr.totals() == {"unknown_key": 10, "account_mismatch": 4}


def test_what_was_recorded_before_a_restart_is_neither_repeated_nor_delayed() -> None:
    before = {("acc_a", "key_x", UNKNOWN): 8, ("acc_a", "key_b1", MISMATCH): 3}
    attr = Attribution(grace_s=60, recorded=before)
    assert attr.totals() == {"unknown_key": 8, "account_mismatch": 3}
    pairs = [total("acc_a", "key_x", 8, None), total("acc_a", "key_b1", 3, "acc_b")]
    assert attr.decide(pairs, now=0) == []
    grown = [total("acc_a", "key_x", 11, None), total("acc_a", "key_b1", 3, "acc_b")]
    assert attr.decide(grown, now=1) == [found("acc_a", "key_x", UNKNOWN, 11)]


def test_each_reason_names_its_anomaly() -> None:
    assert UNKNOWN.anomaly is Anomaly.UNATTRIBUTED_REQUEST
    assert MISMATCH.anomaly is Anomaly.ACCOUNT_MISMATCH
    assert {r.value for r in UnattributedReason} == {"unknown_key", "account_mismatch"}
