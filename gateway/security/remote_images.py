"""Remote image URLs, fetched by the gateway itself and only from allow-listed domains (SSRF-safe).

A client may name an http(s) image URL only when its host is on the operator's allow-list
(GATEWAY_REMOTE_IMAGE_DOMAINS). The gateway then fetches the image and hands vLLM a `data:` URL: it never
forwards the http URL. vLLM would resolve the name again, and a DNS answer that changed in between (DNS
rebinding) would send vLLM, from inside the GPU network, to an address nobody checked.

The checks: the URL is http or https, carries no user name or password, names a domain (never an IP literal)
that is on the allow-list. Then, after DNS, every address the name resolves to must be public
(security/public_addresses.py); the check runs inside the connector's resolver, so the connection goes to exactly the
addresses that were vetted and there is no second lookup to rebind. Redirects are followed by hand, each hop
checked the same way. The body is capped (Content-Length first, then counted as it streams), the whole fetch
has one deadline, and the bytes must start like an image: the data URL's media type comes from them, not from
the server's Content-Type. No cookies are kept, no proxy is taken from the environment, nothing is decompressed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from gateway import __version__
from gateway.errors import InvalidRequest
from gateway.http.media_types import IMAGE_KINDS, image_media_type
from gateway.observability.metrics import GatewayMetrics
from gateway.security.public_addresses import AddressRule, ForbiddenAddress, VettingResolver, is_forbidden_address
from gateway.settings import Settings

log = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": f"vlm-gateway/{__version__} (remote image fetch)",
    "Accept": "image/*",
    # Nothing is decompressed (auto_decompress=False): a few KB of gzip can inflate far past the size cap,
    # and image formats are compressed already. A body sent compressed anyway fails the image check.
    "Accept-Encoding": "identity",
}


class RemoteImageRefused(InvalidRequest):
    """A remote image URL the gateway will not fetch, or whose fetch failed (400); `outcome` labels the metric."""

    def __init__(self, message: str, *, param: str, outcome: str) -> None:
        super().__init__(message, param=param)
        self.outcome = outcome


class DomainAllowList:
    """Host names a remote image may come from: exact names, and `*.example.com` for any subdomain of it."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)  # validated and lower-cased by Settings (check_image_domain)
        self._exact = frozenset(entry for entry in entries if not entry.startswith("*."))
        self._suffixes = tuple(entry[1:] for entry in entries if entry.startswith("*."))  # ".example.com"

    def __bool__(self) -> bool:
        return bool(self._exact or self._suffixes)

    def allows(self, host: str) -> bool:
        name = host.lower().removesuffix(".")
        return name in self._exact or name.endswith(self._suffixes)


@dataclass(frozen=True, slots=True)
class FetchedImage:
    """A remote image's bytes and the media type its signature shows."""

    data: bytes
    media_type: str

    def data_url(self) -> str:
        return f"data:{self.media_type};base64," + base64.b64encode(self.data).decode("ascii")


class RemoteImageFetcher:
    """Fetches allow-listed remote images over one pool; owned by the app, started and closed by its lifespan.

    `address_rule` and `resolver` exist for tests (an image server on loopback, names like `images.test`);
    no setting reaches them, so no deployment can allow loopback or private addresses.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: GatewayMetrics,
        *,
        address_rule: AddressRule = is_forbidden_address,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._allowed = DomainAllowList(settings.remote_image_domains)
        self._max_bytes = settings.remote_image_max_bytes
        self._timeout_s = settings.remote_image_timeout_s
        self._max_redirects = settings.remote_image_max_redirects
        self._metrics = metrics
        self._rule = address_rule
        self._inner_resolver = resolver
        self._resolver: VettingResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        """Whether any domain is allowed (with none, no pool is opened)."""
        return bool(self._allowed)

    async def start(self) -> None:
        """Open the pool; must run inside the serving event loop."""
        if not self.enabled:
            return
        resolver = VettingResolver(self._inner_resolver or ThreadedResolver(), self._rule)
        # No DNS cache: each new connection resolves (and is vetted) afresh, honouring the name's own TTL.
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        self._resolver = resolver
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # no host can set state that follows a later fetch
            trust_env=False,  # no proxy from the environment: the connection goes where the resolver vetted
            auto_decompress=False,
            headers=_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),  # `fetch` gives each image one deadline of its own
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()  # the connector does not close a resolver it was given
            self._resolver = None

    def check_url(self, url: str, param: str) -> URL:
        """Refuse (RemoteImageRefused) a URL that may not be fetched, before any network traffic."""
        try:
            try:
                target = URL(url)
            except ValueError:
                raise RemoteImageRefused(f"`{param}` is not a valid URL", param=param, outcome="refused_url") from None
            return self._check_target(target, param, redirected=False)
        except RemoteImageRefused as refused:
            self._metrics.remote_image_fetches.labels(refused.outcome).inc()
            raise

    async def fetch(self, url: str, *, param: str, max_bytes: int | None = None, pdf: bool = False) -> FetchedImage:
        """Fetch one image, or raise RemoteImageRefused (400) saying why not; `max_bytes` can only lower the cap.

        `pdf` also accepts a PDF (Mistral-style `document_url`); the same rules hold for it in every other way.
        """
        target = self.check_url(url, param)
        cap = self._max_bytes if max_bytes is None else min(max_bytes, self._max_bytes)
        started = time.perf_counter()
        outcome = "error"
        try:
            image = await self._fetch_before_deadline(target, param, cap, pdf)
            outcome = "ok"
        except RemoteImageRefused as refused:
            outcome = refused.outcome
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"  # the client left, or another image of the request failed
            raise
        finally:
            self._metrics.remote_image_fetches.labels(outcome).inc()
            self._metrics.remote_image_seconds.observe(time.perf_counter() - started)
        self._metrics.remote_image_bytes.inc(len(image.data))
        return image

    def _check_target(self, target: URL, param: str, *, redirected: bool) -> URL:
        where = f"`{param}`: " + ("after a redirect, " if redirected else "")
        if target.scheme not in ("http", "https"):
            problem, outcome = f"the URL is {target.scheme or 'relative'}:, not http or https", "refused_url"
        elif target.user is not None or target.password is not None:
            problem, outcome = "a remote image URL must not carry a user name or password", "refused_url"
        elif not target.raw_host:
            problem, outcome = "the URL has no host", "refused_url"
        elif _is_ip_literal(target.raw_host):
            problem, outcome = "the host is an IP address; remote images come only from allowed domains", "refused_url"
        elif not self._allowed.allows(target.raw_host):
            problem = f"the domain {target.raw_host} is not allowed for remote images (GATEWAY_REMOTE_IMAGE_DOMAINS)"
            outcome = "refused_domain"
        else:
            return target.with_fragment(None)
        raise RemoteImageRefused(where + problem, param=param, outcome=outcome)

    async def _fetch_before_deadline(self, target: URL, param: str, cap: int, pdf: bool) -> FetchedImage:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._follow_redirects(target, param, cap, pdf)
        except TimeoutError:
            message = f"`{param}`: the image did not arrive within {self._timeout_s:g} s"
            raise RemoteImageRefused(message, param=param, outcome="timeout") from None
        except ForbiddenAddress as forbidden:
            log.warning("remote image refused: %s", forbidden)  # the address stays in the log, never in the answer
            message = f"`{param}`: the host {forbidden.host} resolves to a non-public address; it is not fetched"
            raise RemoteImageRefused(message, param=param, outcome="refused_address") from None
        except aiohttp.ClientError:
            message = f"`{param}`: the image could not be fetched (its server is unreachable or the connection failed)"
            raise RemoteImageRefused(message, param=param, outcome="unreachable") from None

    async def _follow_redirects(self, url: URL, param: str, cap: int, pdf: bool) -> FetchedImage:
        assert self._session is not None, "start() the fetcher first"
        for _ in range(self._max_redirects + 1):
            # Redirects by hand: aiohttp's own would skip the allow-list (the resolver still checks addresses).
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status not in _REDIRECT_STATUSES:
                    return await _read_image(response, param, cap, pdf)
                url = self._redirect_target(response, param)
        message = f"`{param}`: more than {self._max_redirects} redirects"
        raise RemoteImageRefused(message, param=param, outcome="too_many_redirects")

    def _redirect_target(self, response: aiohttp.ClientResponse, param: str) -> URL:
        location = response.headers.get("Location")
        if not location:
            message = f"`{param}`: the image's server answered HTTP {response.status} without a Location"
            raise RemoteImageRefused(message, param=param, outcome="http_error")
        try:
            target = response.url.join(URL(location))  # a relative Location is relative to this hop
        except ValueError:
            message = f"`{param}`: the image's server redirects to an invalid URL"
            raise RemoteImageRefused(message, param=param, outcome="refused_url") from None
        return self._check_target(target, param, redirected=True)


async def _read_image(response: aiohttp.ClientResponse, param: str, cap: int, pdf: bool) -> FetchedImage:
    """The body of a final response, refused when it is not a 2xx, grows past `cap` or is not an image."""
    if not 200 <= response.status < 300:
        message = f"`{param}`: the image's server answered HTTP {response.status}"
        raise RemoteImageRefused(message, param=param, outcome="http_error")
    too_large = f"`{param}`: the image is larger than this gateway's limit of {cap} bytes"
    if response.content_length is not None and response.content_length > cap:
        raise RemoteImageRefused(too_large, param=param, outcome="too_large")
    data = bytearray()
    async for chunk in response.content.iter_any():  # counted as it arrives: a server may send without end
        data += chunk
        if len(data) > cap:
            raise RemoteImageRefused(too_large, param=param, outcome="too_large")
    media_type = image_media_type(bytes(data[:16]))
    if media_type is None and pdf and data.startswith(b"%PDF-"):
        media_type = "application/pdf"
    if media_type is None:
        message = f"`{param}`: the URL does not hold an image (expected {IMAGE_KINDS} data)"
        raise RemoteImageRefused(message, param=param, outcome="not_image")
    return FetchedImage(bytes(data), media_type)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
