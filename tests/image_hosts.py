"""Test doubles for remote images: made-up names that resolve to loopback, and an address rule that lets the
test image server (127.0.0.1) through.

Loopback is forbidden by the real rule, so without these no test could fetch an image successfully. They are
handed to `RemoteImageFetcher`'s constructor only: no setting reaches them, and a deployment cannot loosen
the rule.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.security.public_addresses import IPAddress, is_forbidden_address

# Test names and the addresses FakeDNS gives them.
NAMES = {
    "images.test": "127.0.0.1",
    "a.cdn.test": "127.0.0.1",
    "other.test": "127.0.0.1",  # kept off the allow-lists
    "metadata.test": "169.254.169.254",
    "private.test": "10.0.0.7",
}
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def loopback_image_server_only(ip: IPAddress) -> str | None:
    """The real rule, except that the test image server's own address (127.0.0.1) is reachable."""
    return None if ip == _LOOPBACK else is_forbidden_address(ip)


class FakeDNS(AbstractResolver):
    """Resolves the names in NAMES; any other name is unknown."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = NAMES.get(host.rstrip("."))
        if address is None:
            raise OSError(f"unknown test name {host}")
        return [ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        pass
