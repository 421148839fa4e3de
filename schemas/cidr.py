"""Allow-list matching (pure): a key's allowed CIDRs against the client's address.

`compile_networks(cidrs)` turns the key's normalised CIDR strings into `ipaddress`
networks once (the verifier caches them per allow-list); a bare address is a one-address
network (/32 or /128), host bits are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
`parse_address(text)` reads the client's address (None: not an address); `allows(networks,
address)` matches IPv4 and IPv6, and an IPv4-mapped IPv6 client (`::ffff:203.0.113.7`,
what a dual-stack socket reports for an IPv4 peer) matches IPv4 networks, as an IPv4
client matches IPv4-mapped IPv6 networks. `overlaps(networks, network)` asks the same of
a whole network (a client's /24 or /48): whether it shares an address with one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_MAPPED_PREFIX = IPv6Network("::ffff:0:0/96")


def compile_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The networks of an allow-list; `ValueError` names an entry that is not one."""
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not an IPv4 or IPv6 network or address") from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """The client address in `text` (an IPv6 zone such as `%eth0` is kept), else None."""
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _alternative(address: Address) -> Address | None:
    """The same client in the other family: IPv4 of a mapped IPv6, mapped IPv6 of an IPv4."""
    if isinstance(address, IPv6Address):
        return address.ipv4_mapped
    return IPv6Address(int(_MAPPED_PREFIX.network_address) | int(address))


def _alternative_network(network: Network) -> Network | None:
    """The same network in the other family (IPv4 inside ::ffff:0:0/96, and back)."""
    if isinstance(network, IPv4Network):
        base = int(_MAPPED_PREFIX.network_address) | int(network.network_address)
        return IPv6Network((base, 96 + network.prefixlen))
    if network.subnet_of(_MAPPED_PREFIX):
        mapped = int(network.network_address) & 0xFFFF_FFFF
        return IPv4Network((mapped, network.prefixlen - 96))
    return None


def allows(networks: tuple[Network, ...], address: Address) -> bool:
    """Whether `address` is in one of `networks` (none: it is not; a key without an
    allow-list is not checked at all)."""
    other = _alternative(address)
    for network in networks:
        if address.version == network.version and address in network:
            return True
        if other is not None and other.version == network.version and other in network:
            return True
    return False


def overlaps(networks: tuple[Network, ...], network: Network) -> bool:
    """Whether `network` shares an address with one of `networks` (IPv4 and IPv4-mapped
    IPv6 networks match each other, as in `allows`)."""
    other = _alternative_network(network)
    for allowed in networks:
        if allowed.version == network.version and allowed.overlaps(network):
            return True
        if other is not None and other.version == allowed.version and allowed.overlaps(other):
            return True
    return False
