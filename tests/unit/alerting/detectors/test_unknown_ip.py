"""`unknown_ip`, pure: the observation of hand-built address histories at `now` — fires on
a new address, stays quiet on known ones, learns while the key is new, never counts an
address (or a network) inside the allow-list, judges networks at prefix granularity — and
its evidence, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerting.detectors import OBSERVERS
from alerting.detectors.unknown_ip import MIN_HISTORY, observe_unknown_ip
from alerting.ports import AddressHistory, NewAddress, WindowStats
from alerting.state import Condition, Observation, classify
from schemas.alerts import AlertRule, RuleKind

NOW = datetime(2026, 12, 1, 12, 30, 20, tzinfo=UTC)
OLD = NOW - timedelta(days=20)
KEY = "key_ab12"


def rule(**fields: Any) -> AlertRule:
    data: dict[str, Any] = {
        "rule_id": "unknown-ip",
        "account_id": "acc_main",
        "name": "Unknown IPs",
        "scope": {"type": "account"},
        "kind": "unknown_ip",
    }
    return AlertRule.model_validate(data | fields)


def new(subject: str, hh: int, mm: int, requests: int) -> NewAddress:
    first = NOW.replace(hour=hh, minute=mm, second=5)
    return NewAddress(subject, first, first + timedelta(minutes=2), requests)


def stats(
    *addresses: NewAddress,
    known: int = 3,
    start: datetime | None = OLD,
    cidrs: tuple[str, ...] = (),
    name: str | None = "Production web",
) -> WindowStats:
    history = AddressHistory(addresses, known, start, cidrs, name)
    return WindowStats(sum(a.requests for a in addresses), addresses=history)


def observe(r: AlertRule, s: WindowStats | None) -> tuple[Observation, Condition]:
    obs = observe_unknown_ip(r, KEY, s, NOW)
    return obs, classify(obs, r)


def test_registered_with_the_evaluator_and_defaults() -> None:
    assert OBSERVERS[RuleKind.UNKNOWN_IP] is observe_unknown_ip
    r = rule()
    assert (r.threshold, r.window_s, r.lookback_s) == (1.0, 3_600, 14 * 86_400)


def test_fires_on_a_new_ip_with_its_evidence() -> None:
    obs, cond = observe(rule(), stats(new("198.51.100.7", 12, 3, 41)))
    assert cond is Condition.BREACH
    assert obs == Observation(
        1.0,
        sample_count=41,
        evidence="key_ab12 (Production web): new IP 198.51.100.7, first seen 12:03 UTC "
        "(41 requests); this key used 3 IPs in the last 14d",
    )


def test_several_new_ips_name_three_and_count_the_rest() -> None:
    addresses = (
        new("198.51.100.7", 11, 40, 1),
        new("2001:db8::5", 11, 52, 1_200),
        new("203.0.113.9", 12, 3, 2),
        new("192.0.2.1", 12, 10, 7),
        new("192.0.2.2", 12, 11, 8),
    )
    late = NewAddress("192.0.2.3", NOW - timedelta(days=1), NOW, 1)  # another day's date
    obs, cond = observe(rule(lookback_s="7d"), stats(*addresses, late, known=1, name=None))
    assert cond is Condition.BREACH and obs.value == 6.0 and obs.sample_count == 1_219
    assert obs.evidence == (
        "key_ab12: 6 new IPs: 198.51.100.7 first seen 11:40 UTC (1 request), 2001:db8::5 "
        "first seen 11:52 UTC (1,200 requests), 203.0.113.9 first seen 12:03 UTC "
        "(2 requests) and 3 more; this key used 1 IP in the last 7d"
    )
    two = observe_unknown_ip(rule(), KEY, stats(late, addresses[0], known=0), NOW)
    assert two.evidence == (
        "key_ab12 (Production web): 2 new IPs: 192.0.2.3 first seen 2026-11-30 12:30 UTC "
        "(1 request), 198.51.100.7 first seen 11:40 UTC (1 request); this key used no IPs "
        "in the last 14d"
    )


def test_threshold_counts_new_addresses() -> None:
    two = stats(new("198.51.100.7", 12, 3, 41), new("198.51.100.8", 12, 4, 1))
    assert observe(rule(threshold=2), two)[1] is Condition.BREACH
    assert observe(rule(threshold=3), two)[1] is Condition.CLEAR


def test_quiet_on_known_ips() -> None:
    """The reader answers only keys with a new address; a key it left out observes 0."""
    obs, cond = observe(rule(), None)
    assert cond is Condition.CLEAR
    assert obs == Observation(0.0, evidence="key_ab12: no new IPs in the last 1h")


def test_learning_while_the_key_is_new() -> None:
    young = NOW - MIN_HISTORY + timedelta(minutes=1)
    obs, cond = observe(rule(), stats(new("198.51.100.7", 12, 3, 41), known=0, start=young))
    assert cond is Condition.LEARNING
    assert obs == Observation(
        1.0,
        sample_count=41,
        learning=True,
        evidence="key_ab12 (Production web): learning which IPs it uses (history since "
        "2026-11-28 12:31 UTC; 3d needed)",
    )
    grown = stats(new("198.51.100.7", 12, 3, 41), start=NOW - MIN_HISTORY)
    assert observe(rule(), grown)[1] is Condition.BREACH
    unknown_start = observe(rule(), stats(new("198.51.100.7", 12, 3, 41), start=None))
    assert unknown_start[1] is Condition.LEARNING


@pytest.mark.parametrize(
    ("cidrs", "subject", "unknown"),
    [
        (("198.51.100.0/24",), "198.51.100.7", False),
        (("198.51.100.7",), "198.51.100.7", False),  # a bare address
        (("198.51.100.0/24",), "198.51.101.7", True),
        (("198.51.100.0/24",), "::ffff:198.51.100.7", False),  # IPv4-mapped IPv6
        (("2001:db8::/32",), "2001:db8:ffff::1", False),
        (("2001:db8::/32",), "2001:db9::1", True),
        (("2001:db8::/32", "10.0.0.0/8"), "10.2.3.4", False),
        (("not a network", "10.0.0.0/8"), "10.2.3.4", False),  # a bad entry is skipped
    ],
)
def test_an_allow_listed_address_is_never_unknown(
    cidrs: tuple[str, ...], subject: str, unknown: bool
) -> None:
    s = stats(new(subject, 12, 3, 41), cidrs=cidrs)
    obs, cond = observe(rule(), s)
    assert cond is (Condition.BREACH if unknown else Condition.CLEAR)
    if not unknown:
        assert obs == Observation(
            0.0,
            evidence="key_ab12 (Production web): no new IPs outside its allow-list in the last 1h",
        )


def test_allow_listed_addresses_leave_the_others_counted() -> None:
    s = stats(
        new("10.0.0.1", 12, 1, 5),
        new("198.51.100.7", 12, 3, 41),
        new("10.0.0.2", 12, 5, 5),
        cidrs=("10.0.0.0/8",),
    )
    obs, cond = observe(rule(), s)
    assert cond is Condition.BREACH and (obs.value, obs.sample_count) == (1.0, 41)
    assert "new IP 198.51.100.7," in obs.evidence


@pytest.mark.parametrize(
    ("cidrs", "subject", "unknown"),
    [
        ((), "203.0.113.0/24", True),
        (("10.0.0.0/8",), "10.1.2.0/24", False),  # inside
        (("203.0.113.7",), "203.0.113.0/24", False),  # overlaps: the allowed part was used
        (("::ffff:203.0.113.0/120",), "203.0.113.0/24", False),
        (("203.0.114.0/24",), "203.0.113.0/24", True),
        (("2001:db8:1:2::1",), "2001:db8:1::/48", False),
        (("2001:db8::/32",), "2001:db8:1::/48", False),
        (("2001:db9::/32",), "2001:db8:1::/48", True),
        (("2001:db8::/32",), "203.0.113.0/24", True),
    ],
)
def test_prefix_networks_against_the_allow_list(
    cidrs: tuple[str, ...], subject: str, unknown: bool
) -> None:
    r = rule(granularity="prefix")
    obs, cond = observe(r, stats(new(subject, 12, 3, 41), cidrs=cidrs))
    assert cond is (Condition.BREACH if unknown else Condition.CLEAR)
    if unknown:
        assert obs.evidence == (
            f"key_ab12 (Production web): new network {subject}, first seen 12:03 UTC "
            "(41 requests); this key used 3 networks in the last 14d"
        )


def test_prefix_wording_when_quiet_learning_and_several() -> None:
    r = rule(granularity="prefix", window_s="15m", lookback_s="30d")
    assert observe_unknown_ip(r, KEY, None, NOW).evidence == (
        "key_ab12: no new networks in the last 15m"
    )
    young = stats(new("203.0.113.0/24", 12, 3, 1), start=NOW - timedelta(hours=5))
    assert observe_unknown_ip(r, KEY, young, NOW).evidence == (
        "key_ab12 (Production web): learning which networks it uses (history since "
        "2026-12-01 07:30 UTC; 3d needed)"
    )
    two = stats(new("203.0.113.0/24", 12, 3, 1), new("2001:db8:1::/48", 12, 20, 3), known=1)
    assert observe_unknown_ip(r, KEY, two, NOW).evidence == (
        "key_ab12 (Production web): 2 new networks: 203.0.113.0/24 first seen 12:03 UTC "
        "(1 request), 2001:db8:1::/48 first seen 12:20 UTC (3 requests); this key used 1 "
        "network in the last 30d"
    )
