"""Which addresses the gateway may connect to on a client's behalf, and a resolver that enforces it.

Only public addresses: never loopback, private, link-local, cloud metadata, carrier-grade NAT, multicast,
reserved or otherwise non-global ones, and an IPv6 address that carries an IPv4 one (mapped, compatible,
NAT64) is judged by that IPv4. The rule is applied after DNS, inside the connector's resolver
(`VettingResolver`): aiohttp connects only to the addresses a resolver returns, so the addresses checked are
the addresses used, and there is no second lookup a rebinding DNS server could answer differently.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressRule = Callable[[IPAddress], str | None]

# Named on their own so the reason says so; each also falls in a broader forbidden range below.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # DNS64 answers for IPv4-only hosts: the last 32 bits are the IPv4


def is_forbidden_address(ip: IPAddress) -> str | None:
    """Why the gateway must not connect to `ip` (a short reason), or None for a public address."""
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # the packets go to the IPv4 address, so it is the one judged
            return is_forbidden_address(embedded)
        if ip.sixtofour is not None:
            return "6to4 tunnel"
        if ip.teredo is not None:
            return "Teredo tunnel"
        if ip.is_site_local:
            return "site-local"
    if ip.is_link_local:
        return "link-local"
    if ip in _CARRIER_GRADE_NAT:
        return "carrier-grade NAT"
    if any(ip in network for network in _PRIVATE_NETWORKS):
        return "private"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, IPv4-compatible or NAT64 IPv6 address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if int(ip) >> 32 == 0 or ip in _NAT64:  # ::a.b.c.d (deprecated) or 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class ForbiddenAddress(Exception):
    """Raised inside aiohttp's connector; not an OSError, so aiohttp lets it through unwrapped."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address} ({reason})")
        self.host = host


class VettingResolver(AbstractResolver):
    """Resolves with `inner`, then refuses the whole answer if any address is forbidden.

    aiohttp connects only to the addresses a resolver returns, so what was checked is what is used.
    """

    def __init__(self, inner: AbstractResolver, rule: AddressRule) -> None:
        self._inner = inner
        self._rule = rule

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            try:
                reason = self._rule(ipaddress.ip_address(answer["host"]))
            except ValueError:
                reason = "not an IP address"
            if reason is not None:
                raise ForbiddenAddress(host, answer["host"], reason)
        return answers

    async def close(self) -> None:
        await self._inner.close()
