"""The pure attribution decisions (`streams.worker.attribution`): tallies per pair, owners
settled at once, unknown keys waiting out their grace, mismatches, the caches' bounds."""

from __future__ import annotations

import random
from collections import Counter

from streams.worker.attribution import Attribution, count_pairs
from streams.worker.ports import Anomaly, UnattributedEvents, UnattributedReason

UNKNOWN = UnattributedReason.UNKNOWN_KEY
MISMATCH = UnattributedReason.ACCOUNT_MISMATCH


def finding(
    account: str,
    key: str,
    reason: UnattributedReason,
    events: int,
    newest: int = 1000,
    source: str = "t|0:0-9",
    owner: str | None = None,
) -> UnattributedEvents:
    return UnattributedEvents(account, key, reason, events, newest, source, owner)


def test_count_pairs_tallies_each_account_and_key() -> None:
    rng = random.Random(3)
    rows = [
        (rng.choice(["acc_a", "acc_b"]), rng.choice(["key_1", "key_2", "key_3"]))
        for _ in range(500)
    ]
    truth: dict[tuple[str, str], int] = {}
    for row in rows:
        truth[row] = truth.get(row, 0) + 1
    got = count_pairs([a for a, _ in rows], [k for _, k in rows])
    assert dict(got) == truth
    assert count_pairs([], []) == Counter()


def test_owned_keys_are_attributed_and_never_recorded() -> None:
    attr = Attribution(grace_s=60)
    attr.add({("acc_a", "key_1"): 5, ("acc_a", "key_2"): 2}, 1000, "t|0:0-9", now=0)
    assert attr.lookups() == ["key_1", "key_2"]
    assert attr.decide({"key_1": "acc_a", "key_2": "acc_a"}, now=0) == []
    assert attr.pending == 0
    # Cached now: the next blocks of these pairs need no lookup and wait for nothing.
    attr.add({("acc_a", "key_1"): 7}, 2000, "t|0:10-19", now=1)
    assert attr.pending == 0 and attr.lookups() == []


def test_a_key_owned_by_another_account_is_a_mismatch_at_once() -> None:
    attr = Attribution(grace_s=60)
    attr.add({("acc_a", "key_b1"): 3, ("acc_b", "key_b1"): 4}, 1000, "t|0:0-9", now=0)
    assert attr.decide({"key_b1": "acc_b"}, now=0) == [
        finding("acc_a", "key_b1", MISMATCH, 3, owner="acc_b")
    ]
    # The owner is cached: a later block's mismatch is found without a lookup.
    attr.add({("acc_a", "key_b1"): 6}, 3000, "t|0:10-19", now=5)
    assert attr.lookups() == []
    assert attr.decide({}, now=5) == [
        finding("acc_a", "key_b1", MISMATCH, 6, newest=3000, source="t|0:10-19", owner="acc_b")
    ]


def test_an_unknown_key_waits_its_grace_adding_up_its_blocks() -> None:
    attr = Attribution(grace_s=30)
    attr.add({("acc_a", "key_x"): 2}, 1000, "t|0:0-9", now=100)
    assert attr.decide({}, now=100) == []
    attr.add({("acc_a", "key_x"): 5}, 4000, "t|0:10-19", now=110)
    attr.add({("acc_a", "key_x"): 1}, 3000, "t|1:0-0", now=120)
    assert attr.lookups() == ["key_x"]
    assert attr.decide({}, now=129.9) == []
    assert attr.decide({}, now=130) == [finding("acc_a", "key_x", UNKNOWN, 8, newest=4000)]
    assert attr.pending == 0
    # A new block of the same pair starts a new finding with its own source.
    attr.add({("acc_a", "key_x"): 4}, 5000, "t|0:20-29", now=131)
    assert attr.decide({}, now=161) == [
        finding("acc_a", "key_x", UNKNOWN, 4, newest=5000, source="t|0:20-29")
    ]


def test_a_key_created_within_the_grace_is_attributed_after_all() -> None:
    attr = Attribution(grace_s=30)
    attr.add({("acc_a", "key_late"): 9, ("acc_b", "key_late"): 1}, 1000, "t|0:0-9", now=0)
    assert attr.decide({}, now=10) == []
    assert attr.decide({"key_late": "acc_a"}, now=20) == [
        finding("acc_b", "key_late", MISMATCH, 1, owner="acc_a")
    ]
    assert attr.pending == 0


def test_too_many_waiting_pairs_settle_the_oldest_first() -> None:
    attr = Attribution(grace_s=60, max_pending=2)
    for i in range(4):
        attr.add({("acc_a", f"key_{i}"): i + 1}, 1000, f"t|0:{i}-{i}", now=i)
    found = attr.decide({}, now=4)
    assert found == [
        finding("acc_a", "key_0", UNKNOWN, 1, source="t|0:0-0"),
        finding("acc_a", "key_1", UNKNOWN, 2, source="t|0:1-1"),
    ]
    assert attr.lookups() == ["key_2", "key_3"]


def test_the_owner_cache_is_bounded_oldest_forgotten() -> None:
    attr = Attribution(grace_s=60, max_owners=2)
    attr.add({("acc_a", "key_1"): 1, ("acc_a", "key_2"): 1, ("acc_a", "key_3"): 1}, 0, "s", 0)
    assert attr.decide({"key_1": "acc_a", "key_2": "acc_a", "key_3": "acc_a"}, now=0) == []
    attr.add({("acc_a", "key_1"): 1, ("acc_a", "key_3"): 1}, 0, "s2", 1)
    assert attr.lookups() == ["key_1"]  # forgotten: looked up again, still attributed
    assert attr.decide({"key_1": "acc_a"}, now=1) == []


def test_each_reason_names_its_anomaly() -> None:
    assert UNKNOWN.anomaly is Anomaly.UNATTRIBUTED_REQUEST
    assert MISMATCH.anomaly is Anomaly.ACCOUNT_MISMATCH
    assert {r.value for r in UnattributedReason} == {"unknown_key", "account_mismatch"}


def test_owners_found_count_even_when_the_cache_cannot_hold_them() -> None:
    attr = Attribution(grace_s=0, max_owners=1)
    attr.add({("acc_a", "key_1"): 1, ("acc_a", "key_2"): 1, ("acc_b", "key_3"): 2}, 0, "s", 0)
    found = attr.decide({"key_1": "acc_a", "key_2": "acc_a", "key_3": "acc_a"}, now=0)
    assert found == [finding("acc_b", "key_3", MISMATCH, 2, newest=0, source="s", owner="acc_a")]
