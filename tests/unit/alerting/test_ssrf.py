"""The SSRF guard: literal forms, address classes and the resolver contract (no network)."""

from __future__ import annotations

import ipaddress

import pytest

from alerting.ssrf import BlockReason, UnsafeUrlError, block_reason, check_literal, check_url


def resolver_for(*answers: str, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(f"{host}:{port}")
        return list(answers)

    return resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", BlockReason.LOOPBACK),
        ("http://127.8.9.10:8080/x", BlockReason.LOOPBACK),
        ("http://[::1]/", BlockReason.LOOPBACK),
        ("http://10.0.0.5/", BlockReason.PRIVATE),
        ("http://172.16.3.4/", BlockReason.PRIVATE),
        ("http://192.168.1.1/", BlockReason.PRIVATE),
        ("http://[fc00::1]/", BlockReason.PRIVATE),
        ("http://[fd12:3456::1]/", BlockReason.PRIVATE),
        ("http://169.254.10.10/", BlockReason.LINK_LOCAL),
        ("http://[fe80::1]/", BlockReason.LINK_LOCAL),
        ("http://169.254.169.254/latest/meta-data/", BlockReason.METADATA),
        ("http://[fd00:ec2::254]/", BlockReason.METADATA),
        ("http://0.0.0.0/", BlockReason.UNSPECIFIED),
        ("http://[::]/", BlockReason.UNSPECIFIED),
        ("http://224.0.0.1/", BlockReason.MULTICAST),
        ("http://[ff02::1]/", BlockReason.MULTICAST),
        ("http://240.0.0.1/", BlockReason.RESERVED),
        ("http://100.64.0.1/", BlockReason.RESERVED),
        ("http://255.255.255.255/", BlockReason.RESERVED),
        ("http://[::ffff:127.0.0.1]/", BlockReason.IPV4_EMBEDDED),
        ("http://[::ffff:7f00:1]/", BlockReason.IPV4_EMBEDDED),
        ("http://[::ffff:8.8.8.8]/", BlockReason.IPV4_EMBEDDED),
        ("http://[::127.0.0.1]/", BlockReason.IPV4_EMBEDDED),
        ("http://[64:ff9b::7f00:1]/", BlockReason.IPV4_EMBEDDED),
        ("http://[2002:7f00:1::]/", BlockReason.IPV4_EMBEDDED),
        ("http://2130706433/", BlockReason.IP_LITERAL_FORM),
        ("http://0177.0.0.1/", BlockReason.IP_LITERAL_FORM),
        ("http://0x7f.0.0.1/", BlockReason.IP_LITERAL_FORM),
        ("http://0x7f000001/", BlockReason.IP_LITERAL_FORM),
        ("http://017700000001/", BlockReason.IP_LITERAL_FORM),
        ("http://127.1/", BlockReason.IP_LITERAL_FORM),
        ("http://127.0.1/", BlockReason.IP_LITERAL_FORM),
        ("http://10.0.0.010/", BlockReason.IP_LITERAL_FORM),
        ("http://127.0.0.1./", BlockReason.LOOPBACK),
        ("ftp://example.com/", BlockReason.SCHEME),
        ("file:///etc/passwd", BlockReason.SCHEME),
        ("gopher://example.com/", BlockReason.SCHEME),
        ("http://user:pw@example.com/", BlockReason.CREDENTIALS),
        ("http://example.com@127.0.0.1/", BlockReason.CREDENTIALS),
        ("http:///path", BlockReason.MALFORMED),
        ("http://example.com:99999/", BlockReason.MALFORMED),
    ],
)
def test_literal_forms_are_rejected_without_dns(url: str, reason: BlockReason) -> None:
    with pytest.raises(UnsafeUrlError) as info:
        check_literal(url)
    assert info.value.reason is reason


@pytest.mark.parametrize(
    ("url", "host", "port", "path"),
    [
        ("https://hooks.example.com/x?y=1", "hooks.example.com", 443, "/x?y=1"),
        ("http://93.184.216.34/", "93.184.216.34", 80, "/"),
        ("https://[2606:4700::1111]/", "2606:4700::1111", 443, "/"),
        ("https://1e100.net/", "1e100.net", 443, "/"),
        ("https://sub.127.0.0.1.example.com/", "sub.127.0.0.1.example.com", 443, "/"),
    ],
)
def test_public_literals_and_names_pass_the_syntactic_check(
    url: str, host: str, port: int, path: str
) -> None:
    parsed = check_literal(url)
    assert (parsed.host, parsed.port, parsed.path) == (host, port, path)


def test_allow_loopback_admits_only_loopback() -> None:
    assert check_literal("http://127.0.0.1:8080/", allow_loopback=True).port == 8080
    assert check_literal("http://[::1]/", allow_loopback=True).host == "::1"
    with pytest.raises(UnsafeUrlError):
        check_literal("http://10.0.0.1/", allow_loopback=True)
    with pytest.raises(UnsafeUrlError):
        check_literal("http://[::ffff:127.0.0.1]/", allow_loopback=True)
    with pytest.raises(UnsafeUrlError):
        check_literal("http://2130706433/", allow_loopback=True)


def test_block_reason_public_addresses() -> None:
    for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert block_reason(ipaddress.ip_address(text)) is None


async def test_resolved_addresses_are_checked() -> None:
    calls: list[str] = []
    target = await check_url(
        "https://hooks.example.com/path?q=1", resolver=resolver_for("93.184.216.34", calls=calls)
    )
    assert calls == ["hooks.example.com:443"]
    assert str(target.ip) == "93.184.216.34"
    assert target.connect_url == "https://93.184.216.34:443/path?q=1"
    assert target.host_header == "hooks.example.com"

    v6 = await check_url("http://h.example.com:8080/", resolver=resolver_for("2606:4700::1"))
    assert v6.connect_url == "http://[2606:4700::1]:8080/"
    assert v6.host_header == "h.example.com:8080"


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], BlockReason.LOOPBACK),
        (["93.184.216.34", "10.1.2.3"], BlockReason.PRIVATE),
        (["169.254.169.254"], BlockReason.METADATA),
        (["::ffff:10.0.0.1"], BlockReason.IPV4_EMBEDDED),
        (["fe80::1%eth0"], BlockReason.LINK_LOCAL),
        ([], BlockReason.RESOLUTION_FAILED),
        (["not-an-ip"], BlockReason.RESOLUTION_FAILED),
    ],
)
async def test_any_bad_answer_rejects(answers: list[str], reason: BlockReason) -> None:
    with pytest.raises(UnsafeUrlError) as info:
        await check_url("https://evil.example.com/", resolver=resolver_for(*answers))
    assert info.value.reason is reason


async def test_resolution_failure_is_reported() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnsafeUrlError) as info:
        await check_url("https://nowhere.invalid/", resolver=failing)
    assert info.value.reason is BlockReason.RESOLUTION_FAILED


async def test_literal_urls_skip_the_resolver() -> None:
    calls: list[str] = []
    await check_url("http://93.184.216.34/", resolver=resolver_for("127.0.0.1", calls=calls))
    assert calls == []
