"""Guard against server-side request forgery through user-supplied webhook URLs.

`check_url` accepts only http(s) URLs without credentials (`schemas.alerts.parse_http_url`,
the one parser of webhook URLs), resolves the host once through an injectable resolver,
and rejects the URL if any resolved address (or the literal address) is loopback, private,
link-local, a cloud metadata address, unspecified, multicast, reserved or otherwise not
globally routable, or an IPv6 form that embeds an IPv4 address (mapped, compatible,
NAT64, 6to4, Teredo). Non-canonical IPv4 literals that C
resolvers accept (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are rejected outright.
The caller must connect to `CheckedTarget.ip`, never re-resolve the host (DNS rebinding).
`allow_loopback` admits 127.0.0.0/8 and ::1 only, for tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from schemas.alerts import HttpUrl, UrlError, parse_http_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve (host, port) to IP address strings."""

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_CANONICAL_OCTET = re.compile(r"^(0|[1-9][0-9]{0,2})$")


class BlockReason(StrEnum):
    SCHEME = "scheme"
    MALFORMED = "malformed"
    CREDENTIALS = "credentials"
    IP_LITERAL_FORM = "ip_literal_form"
    RESOLUTION_FAILED = "resolution_failed"
    METADATA = "metadata"
    UNSPECIFIED = "unspecified"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link_local"
    MULTICAST = "multicast"
    PRIVATE = "private"
    RESERVED = "reserved"
    IPV4_EMBEDDED = "ipv4_embedded"


class UnsafeUrlError(Exception):
    """The URL must not be fetched; `reason` says why."""

    def __init__(self, reason: BlockReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the guard, bound to the address that was checked."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress
    path: str

    @property
    def connect_url(self) -> str:
        """The URL with the host replaced by the checked IP (connect here)."""
        host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


async def system_resolver(host: str, port: int) -> list[str]:
    """socket.getaddrinfo in a worker thread; returns the distinct addresses in order."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _embeds_ipv4(ip: IPAddress) -> bool:
    """An IPv6 form that carries an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return False
    return (
        ip.ipv4_mapped is not None
        or int(ip) >> 32 == 0  # IPv4-compatible ::a.b.c.d
        or any(ip in net for net in _NAT64)
        or ip.sixtofour is not None
        or ip.teredo is not None
    )


def _is_reserved(ip: IPAddress) -> bool:
    return ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and ip.packed == b"\xff" * 4)


def _is_private(ip: IPAddress) -> bool:
    return ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)


_CHECKS: tuple[tuple[Callable[[IPAddress], bool], BlockReason], ...] = (
    (METADATA_ADDRESSES.__contains__, BlockReason.METADATA),
    (lambda ip: ip.is_unspecified, BlockReason.UNSPECIFIED),
    (lambda ip: ip.is_loopback, BlockReason.LOOPBACK),
    (_embeds_ipv4, BlockReason.IPV4_EMBEDDED),
    (lambda ip: ip.is_link_local, BlockReason.LINK_LOCAL),
    (lambda ip: ip.is_multicast, BlockReason.MULTICAST),
    (_is_reserved, BlockReason.RESERVED),
    (_is_private, BlockReason.PRIVATE),
    (lambda ip: not ip.is_global, BlockReason.RESERVED),
)
"""In order: the first check that holds gives the reason."""


def block_reason(ip: IPAddress, *, allow_loopback: bool = False) -> BlockReason | None:
    """Why `ip` must not be contacted, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    for holds, reason in _CHECKS:
        if holds(ip):
            return None if reason is BlockReason.LOOPBACK and allow_loopback else reason
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The address a literal host denotes; rejects non-canonical IPv4 spellings."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if labels and _NUMERIC_LABEL.match(labels[-1]):
        # A numeric last label means an IPv4 literal (no TLD is numeric); the canonical
        # dotted quad parsed above, so this is a decimal/octal/hex/short form.
        if (
            len(labels) == 4
            and all(_CANONICAL_OCTET.match(x) for x in labels)
            and host.endswith(".")
        ):
            return ipaddress.ip_address(host.rstrip("."))
        raise UnsafeUrlError(
            BlockReason.IP_LITERAL_FORM, f"non-canonical IPv4 literal {host!r} is not allowed"
        )
    return None


def _parse(url: str) -> tuple[HttpUrl, IPAddress | None]:
    """`schemas.alerts.parse_http_url`, plus the IP literal forms; no DNS."""
    try:
        parts = parse_http_url(url)
    except UrlError as exc:
        raise UnsafeUrlError(BlockReason(exc.reason), str(exc)) from None
    literal = _literal_ip(parts.host)
    if literal is None and "%" in parts.host:
        raise UnsafeUrlError(BlockReason.MALFORMED, f"invalid host {parts.host!r}")
    return parts, literal


def _check_address(ip: IPAddress, shown: str, allow_loopback: bool) -> None:
    reason = block_reason(ip, allow_loopback=allow_loopback)
    if reason is not None:
        raise UnsafeUrlError(reason, f"{shown} is not a public address")


def check_literal(url: str, *, allow_loopback: bool = False) -> HttpUrl:
    """The syntactic checks plus the address check when the host is an IP literal (no DNS)."""
    parts, literal = _parse(url)
    if literal is not None:
        _check_address(literal, str(literal), allow_loopback)
    return parts


async def check_url(
    url: str, *, resolver: Resolver = system_resolver, allow_loopback: bool = False
) -> CheckedTarget:
    """Validate `url`, resolve it once and return the target bound to a checked address.

    Raises `UnsafeUrlError` if the URL is malformed, unresolvable, or any of its addresses
    is blocked.
    """
    parsed, literal = _parse(url)
    addresses = [literal] if literal is not None else await _resolve(parsed, resolver)
    for ip in addresses:
        _check_address(ip, f"{parsed.host} resolves to {ip}, which", allow_loopback)
    return CheckedTarget(
        url=parsed.url,
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        ip=addresses[0],
        path=parsed.path,
    )


async def _resolve(parsed: HttpUrl, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = await resolver(parsed.host, parsed.port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(BlockReason.RESOLUTION_FAILED, f"{parsed.host}: {exc}") from None
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
    except ValueError as exc:
        raise UnsafeUrlError(BlockReason.RESOLUTION_FAILED, str(exc)) from None
    if not addresses:
        raise UnsafeUrlError(BlockReason.RESOLUTION_FAILED, f"{parsed.host}: no address")
    return addresses
