"""Allow-list matching: IPv4, IPv6, IPv4-mapped IPv6, /0, bare addresses; networks that
overlap the allow-list."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from schemas.cidr import allows, compile_networks, overlaps, parse_address

CASES = [
    (["203.0.113.0/24"], "203.0.113.7", True),
    (["203.0.113.0/24"], "203.0.114.7", False),
    (["203.0.113.0/24"], "::ffff:203.0.113.7", True),  # a dual-stack socket's IPv4 peer
    (["203.0.113.0/24"], "::ffff:203.0.114.7", False),
    (["::ffff:203.0.113.0/120"], "203.0.113.9", True),
    (["2001:db8::/32"], "2001:db8:ffff::1", True),
    (["2001:db8::/32"], "2001:db9::1", False),
    (["2001:db8::/32"], "203.0.113.7", False),
    (["0.0.0.0/0"], "198.51.100.1", True),
    (["0.0.0.0/0"], "2001:db8::1", False),
    (["::/0"], "2001:db8::1", True),
    (["198.51.100.4"], "198.51.100.4", True),  # a bare address is /32
    (["198.51.100.4"], "198.51.100.5", False),
    (["2001:db8::7"], "2001:db8::7", True),  # and /128
    (["2001:db8::7"], "2001:db8::8", False),
    (["10.1.2.3/8"], "10.200.0.1", True),  # host bits ignored
    (["192.0.2.0/24", "2001:db8::/32"], "2001:db8::1", True),
    (["fe80::/10"], "fe80::1%eth0", True),
]


@pytest.mark.parametrize(("cidrs", "client", "allowed"), CASES)
def test_matching(cidrs: list[str], client: str, allowed: bool) -> None:
    address = parse_address(client)
    assert address is not None
    assert allows(compile_networks(cidrs), address) is allowed


def test_no_networks_allow_nothing() -> None:
    address = parse_address("192.0.2.1")
    assert address is not None and not allows((), address)


@pytest.mark.parametrize("text", ["", "banana", "300.1.1.1", "1.2.3", "::g"])
def test_not_an_address(text: str) -> None:
    assert parse_address(text) is None


def test_a_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        compile_networks(["192.0.2.0/24", "10.0.0.0/33"])


@pytest.mark.parametrize(
    ("cidrs", "network", "shared"),
    [
        (["203.0.113.7"], "203.0.113.0/24", True),
        (["10.0.0.0/8"], "10.1.2.0/24", True),
        (["203.0.113.0/25"], "203.0.113.0/24", True),
        (["203.0.114.0/24"], "203.0.113.0/24", False),
        (["::ffff:203.0.113.0/120"], "203.0.113.0/24", True),
        (["203.0.113.0/24"], "::ffff:203.0.113.0/120", True),
        (["2001:db8:1:2::1"], "2001:db8:1::/48", True),
        (["2001:db8::/32"], "2001:db8:1::/48", True),
        (["2001:db9::/32"], "2001:db8:1::/48", False),
        (["2001:db8::/32"], "203.0.113.0/24", False),
    ],
)
def test_network_overlap(cidrs: list[str], network: str, shared: bool) -> None:
    assert overlaps(compile_networks(cidrs), ip_network(network)) is shared
