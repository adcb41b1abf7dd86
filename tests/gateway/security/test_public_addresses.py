"""The address rule behind remote images: only public addresses, judged after DNS."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.security.public_addresses import ForbiddenAddress, VettingResolver, is_forbidden_address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # The cloud metadata endpoints, named as such even though each is in a forbidden range anyway.
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        # Loopback and unspecified.
        ("127.0.0.1", "loopback"),
        ("127.45.6.7", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        # RFC 1918 and IPv6 unique local.
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        # Link-local (where the metadata services live) and the deprecated IPv6 site-local.
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("fec0::1", "site-local"),
        # Carrier-grade NAT: ipaddress calls it neither private nor global.
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        # Multicast: ipaddress calls 224.0.0.1 global, so it needs its own check.
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        # Reserved and otherwise not globally routable.
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.1.2.3", "not globally routable"),
        ("192.0.2.1", "not globally routable"),  # documentation
        ("198.18.0.1", "not globally routable"),  # benchmarking
        ("2001:db8::1", "not globally routable"),
        # IPv6 forms that carry an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:100.64.0.1", "carrier-grade NAT"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated)
        ("::10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        # Tunnels that embed an IPv4 address of their own choosing.
        ("2002:7f00:1::1", "6to4 tunnel"),
        ("2002:808:808::1", "6to4 tunnel"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel"),
    ],
)
def test_non_public_addresses_are_forbidden_with_their_reason(address: str, reason: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # mapped: judged by its public IPv4
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8, as DNS64 answers on an IPv6-only network
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is None


class _Answers(AbstractResolver):
    """A resolver that answers every name with the given addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_passes_public_answers_through_unchanged() -> None:
    answers = await VettingResolver(_Answers("93.184.216.34", "1.1.1.1"), is_forbidden_address).resolve("a.test", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "1.1.1.1"]


@pytest.mark.parametrize("addresses", [("10.0.0.1",), ("93.184.216.34", "10.0.0.1"), ("not-an-address",)])
async def test_the_resolver_refuses_a_name_if_any_address_is_forbidden(addresses: tuple[str, ...]) -> None:
    # One public address next to a private one is refused too: a mixed answer is a rebinding trick.
    with pytest.raises(ForbiddenAddress):
        await VettingResolver(_Answers(*addresses), is_forbidden_address).resolve("mixed.test", 80)
