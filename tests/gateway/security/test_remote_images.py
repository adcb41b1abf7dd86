"""Remote images: the allow-list, and fetches against real aiohttp servers on loopback.

Loopback is a forbidden address, so an image server here can only be reached by a fetcher built with an
injected address rule that lets exactly 127.0.0.1 through (and judges everything else by the real rule), and
an injected resolver that maps test names (`images.test`) to addresses (tests/image_hosts.py). Both are
constructor parameters that no setting reaches. The tests named "real rule" use the default rule and prove
that the check happens after DNS.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from gateway.observability.metrics import GatewayMetrics
from gateway.security.public_addresses import AddressRule, is_forbidden_address
from gateway.security.remote_images import DomainAllowList, RemoteImageFetcher, RemoteImageRefused
from gateway.settings import Settings
from tests.image_hosts import FakeDNS, loopback_image_server_only
from tests.images import image_bytes

PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG")
ALLOWED = ["images.test", "*.cdn.test", "metadata.test", "private.test", "localhost"]


# ---------------------------------------------------------------------------------------------- allow-list


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("images.example.com", True),
        ("IMAGES.Example.COM", True),  # case
        ("images.example.com.", True),  # the fully-qualified form
        ("example.com", False),  # an exact entry allows only itself
        ("a.cdn.example.net", True),  # wildcard: any subdomain
        ("x.y.cdn.example.net", True),
        ("cdn.example.net", False),  # wildcard: not the apex
        ("evilcdn.example.net", False),
        ("images.example.com.evil.net", False),
        ("evilimages.example.com", False),
        ("", False),
    ],
)
def test_allow_list_matches_exact_names_and_wildcard_subdomains(host: str, allowed: bool) -> None:
    allow_list = DomainAllowList(
        Settings(remote_image_domains=["images.example.com", "*.cdn.example.net"]).remote_image_domains
    )
    assert allow_list.allows(host) is allowed


def test_allow_list_entries_are_read_comma_separated_and_lower_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_REMOTE_IMAGE_DOMAINS", " Images.Example.com. , *.CDN.example.net")
    assert Settings().remote_image_domains == ["images.example.com", "*.cdn.example.net"]


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ("https://images.example.com", "without a scheme or path"),
        ("images.example.com/photos", "without a scheme or path"),
        ("images.example.com:8443", "without a port"),
        ("user@images.example.com", "without a user name"),
        ("10.0.0.1", "IP addresses are not allowed"),
        ("169.254.169.254", "IP addresses are not allowed"),
        ("[::1]", "IP addresses are not allowed"),
        ("::1", "IP addresses are not allowed"),
        ("127.1", "looks like an IP address"),
        ("*.com", "at least two labels"),
        ("images.*.example.com", "only allowed as a leading"),
        ("*", "only allowed as a leading"),
        ("bad_name.example.com", "not a valid host name"),
        ("-images.example.com", "not a valid host name"),
        ("images..example.com", "not a valid host name"),
    ],
)
def test_bad_allow_list_entries_fail_fast(entry: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(remote_image_domains=[entry])


# ------------------------------------------------------------------------------------------ image server


class ImageServer:
    """An aiohttp server on 127.0.0.1 with one route per behaviour under test."""

    def __init__(self) -> None:
        self.port = 0
        self.hits: list[str] = []
        app = web.Application()
        app.router.add_get("/{name}", self._route)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()

    def url(self, path: str, host: str = "images.test") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _route(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits.append(name)
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = getattr(self, "_" + name.replace("-", "_"))
        return await handler(request)

    async def _png(self, _: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="text/plain")  # the bytes decide the media type, not this

    async def _jpeg_called_png(self, _: web.Request) -> web.StreamResponse:
        return web.Response(body=JPEG, content_type="image/png")

    async def _text(self, _: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>not an image</html>", content_type="image/png")

    async def _missing(self, _: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="no such image")

    async def _hops(self, request: web.Request) -> web.StreamResponse:
        left = int(request.query["n"])
        location = f"/hops?n={left - 1}" if left > 1 else "png"  # the last hop is relative to this one
        raise web.HTTPFound(location)

    async def _to_other_domain(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self.url("/png", host="other.test"))

    async def _to_metadata(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self.url("/png", host="metadata.test"))

    async def _to_file(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("file:///etc/passwd")

    async def _to_ip(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{self.port}/png")

    async def _declared_huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10**9
        await response.prepare(request)
        await response.write(PNG[:64])
        await asyncio.sleep(30)  # a fetch that waited for the body would time out instead
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})  # chunked, no length
        await response.prepare(request)
        await response.write(PNG)
        while True:
            await response.write(b"\0" * 65536)

    async def _slow(self, _: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(body=PNG)

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        # Never silent for long, so only a deadline over the whole fetch stops it (no read timeout would).
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        for byte in PNG:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.05)
        return response


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    image_server = ImageServer()
    await image_server.start()
    yield image_server
    await image_server.stop()


FetcherFactory = Callable[..., Awaitable[RemoteImageFetcher]]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[FetcherFactory]:
    """Started fetchers: the test names and the loopback image server reachable, unless `rule` (the real one)
    and `system_dns` say otherwise; `settings` override the Settings fields."""
    started: list[RemoteImageFetcher] = []

    async def make(
        *,
        rule: AddressRule = loopback_image_server_only,
        system_dns: bool = False,
        metrics: GatewayMetrics | None = None,
        **settings: Any,
    ) -> RemoteImageFetcher:
        values: dict[str, Any] = {"remote_image_domains": ALLOWED, "remote_image_timeout_s": 5.0, **settings}
        resolver = None if system_dns else FakeDNS()
        metrics = metrics or GatewayMetrics()
        fetcher = RemoteImageFetcher(Settings(**values), metrics, address_rule=rule, resolver=resolver)
        await fetcher.start()
        started.append(fetcher)
        return fetcher

    yield make
    for fetcher in started:
        await fetcher.close()


async def _refusal(fetcher: RemoteImageFetcher, url: str, **options: Any) -> RemoteImageRefused:
    with pytest.raises(RemoteImageRefused) as caught:
        await fetcher.fetch(url, param="messages[0].content[1].image_url.url", **options)
    assert caught.value.param == "messages[0].content[1].image_url.url"
    assert caught.value.status_code == 400
    return caught.value


def _count(metrics: GatewayMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("gateway_remote_image_fetches_total", {"outcome": outcome})
    return value or 0.0


# ---------------------------------------------------------------------------------------------- success


async def test_an_allowed_image_is_fetched_and_its_media_type_read_from_its_bytes(
    server: ImageServer, make_fetcher: FetcherFactory
) -> None:
    metrics = GatewayMetrics()
    fetcher = await make_fetcher(metrics=metrics)
    image = await fetcher.fetch(server.url("/png"), param="image")
    assert (image.data, image.media_type) == (PNG, "image/png")  # served as text/plain
    assert image.data_url().startswith("data:image/png;base64,iVBORw0KGgo")
    jpeg = await fetcher.fetch(server.url("/jpeg-called-png", host="a.cdn.test"), param="image")
    assert jpeg.media_type == "image/jpeg"  # served as image/png
    assert _count(metrics, "ok") == 2
    assert metrics.registry.get_sample_value("gateway_remote_image_bytes_total") == len(PNG) + len(JPEG)


async def test_redirects_are_followed_up_to_the_limit_relative_ones_included(
    server: ImageServer, make_fetcher: FetcherFactory
) -> None:
    fetcher = await make_fetcher(remote_image_max_redirects=3)
    assert (await fetcher.fetch(server.url("/hops?n=3"), param="image")).data == PNG
    refused = await _refusal(fetcher, server.url("/hops?n=4"))
    assert (refused.outcome, str(refused)) == ("too_many_redirects", refused.message)
    assert "more than 3 redirects" in refused.message
    assert server.hits.count("png") == 1  # the fourth hop was never requested


# -------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("url", "outcome", "words"),
    [
        ("http://user:secret@images.test/png", "refused_url", "user name or password"),
        ("http://user@images.test/png", "refused_url", "user name or password"),
        ("http://127.0.0.1/png", "refused_url", "is an IP address"),
        ("http://[::1]/png", "refused_url", "is an IP address"),
        ("http://169.254.169.254/latest/meta-data/", "refused_url", "is an IP address"),
        ("http://other.test/png", "refused_domain", "the domain other.test is not allowed"),
        ("http://cdn.test/png", "refused_domain", "is not allowed"),  # wildcard: not the apex
        ("http://images.test.other.test/png", "refused_domain", "is not allowed"),
    ],
)
async def test_urls_that_may_not_be_fetched_are_refused_before_any_traffic(
    make_fetcher: FetcherFactory, url: str, outcome: str, words: str
) -> None:
    metrics = GatewayMetrics()
    fetcher = await make_fetcher(metrics=metrics)
    refused = await _refusal(fetcher, url)
    assert refused.outcome == outcome
    assert words in refused.message
    assert _count(metrics, outcome) == 1  # counted once, though `fetch` checks through `check_url`


async def test_with_no_allow_list_nothing_is_fetched(make_fetcher: FetcherFactory) -> None:
    fetcher = await make_fetcher(remote_image_domains=[])
    assert not fetcher.enabled
    assert (await _refusal(fetcher, "http://images.test/png")).outcome == "refused_domain"


@pytest.mark.parametrize(
    ("path", "outcome", "words"),
    [
        ("/to-other-domain", "refused_domain", "after a redirect, the domain other.test is not allowed"),
        ("/to-file", "refused_url", "after a redirect, the URL is file:"),
        ("/to-ip", "refused_url", "after a redirect, the host is an IP address"),
        ("/to-metadata", "refused_address", "metadata.test resolves to a non-public address"),
        ("/missing", "http_error", "answered HTTP 404"),
        ("/text", "not_image", "does not hold an image"),
    ],
)
async def test_every_hop_and_the_final_answer_are_checked(
    server: ImageServer, make_fetcher: FetcherFactory, path: str, outcome: str, words: str
) -> None:
    fetcher = await make_fetcher()
    refused = await _refusal(fetcher, server.url(path))
    assert refused.outcome == outcome
    assert words in refused.message
    assert "169.254" not in refused.message
    assert "png" not in server.hits  # no redirect target was ever requested


async def test_real_rule_an_allowed_name_that_resolves_to_loopback_is_refused(
    server: ImageServer, make_fetcher: FetcherFactory
) -> None:
    # `localhost` is on the allow-list and the system resolver answers 127.0.0.1 (or ::1): the domain check
    # passes, and only the check made after DNS stands between the gateway and its own host.
    fetcher = await make_fetcher(rule=is_forbidden_address, system_dns=True)
    refused = await _refusal(fetcher, server.url("/png", host="localhost"))
    assert refused.outcome == "refused_address"
    assert "localhost resolves to a non-public address" in refused.message
    # The resolved address is never echoed to the client.
    assert "127.0.0.1" not in refused.message
    assert "::1" not in refused.message
    assert server.hits == []


async def test_real_rule_holds_for_whatever_the_resolver_answers(
    server: ImageServer, make_fetcher: FetcherFactory
) -> None:
    fetcher = await make_fetcher(rule=is_forbidden_address)
    for host in ("images.test", "private.test", "metadata.test"):
        assert (await _refusal(fetcher, server.url("/png", host=host))).outcome == "refused_address"
    assert server.hits == []


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read(
    server: ImageServer, make_fetcher: FetcherFactory
) -> None:
    fetcher = await make_fetcher(remote_image_timeout_s=5.0)
    started = time.monotonic()
    refused = await _refusal(fetcher, server.url("/declared-huge"))
    assert refused.outcome == "too_large"
    assert "larger than this gateway's limit of 10485760 bytes" in refused.message
    assert time.monotonic() - started < 2.0  # the server never finishes its body: reading it would time out


async def test_a_body_without_length_is_cut_off_at_the_cap(server: ImageServer, make_fetcher: FetcherFactory) -> None:
    # The server sends without end: only counting the body as it streams can stop this fetch early.
    fetcher = await make_fetcher(remote_image_max_bytes=256 * 1024, remote_image_timeout_s=5.0)
    started = time.monotonic()
    assert (await _refusal(fetcher, server.url("/endless"))).outcome == "too_large"
    assert time.monotonic() - started < 2.0


async def test_a_smaller_cap_from_the_caller_applies(server: ImageServer, make_fetcher: FetcherFactory) -> None:
    fetcher = await make_fetcher()
    assert (await _refusal(fetcher, server.url("/png"), max_bytes=len(PNG) - 1)).outcome == "too_large"
    assert (await fetcher.fetch(server.url("/png"), param="image", max_bytes=len(PNG))).data == PNG


@pytest.mark.parametrize("path", ["/slow", "/drip"])
async def test_one_deadline_covers_the_whole_fetch(
    server: ImageServer, make_fetcher: FetcherFactory, path: str
) -> None:
    # /slow never answers; /drip answers at once and sends a byte every 50 ms, for ~3 s in all.
    fetcher = await make_fetcher(remote_image_timeout_s=0.4)
    started = time.monotonic()
    refused = await _refusal(fetcher, server.url(path))
    assert refused.outcome == "timeout"
    assert "did not arrive within 0.4 s" in refused.message
    assert time.monotonic() - started < 1.5


async def test_an_unreachable_host_is_a_400_not_a_500(make_fetcher: FetcherFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    fetcher = await make_fetcher()
    refused = await _refusal(fetcher, f"http://images.test:{closed_port}/png")
    assert refused.outcome == "unreachable"
