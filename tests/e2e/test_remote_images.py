"""Remote image URLs through the running gateway: vLLM only ever receives the image inline, as a data: URL.

The image server listens on 127.0.0.1, which the real address rule forbids. So the gateways that must fetch
successfully get their fetcher replaced, after the app is built and before it starts, by one constructed
with the test doubles of tests/image_hosts.py (the names `images.test`, `other.test` resolve to 127.0.0.1;
exactly 127.0.0.1 is reachable). That constructor parameter is the only loosening there is: no setting can
do it, and `test_the_real_rule_refuses_an_allowed_name_resolving_to_loopback` runs the gateway as deployed.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.security.remote_images import RemoteImageFetcher
from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL, gateway_settings
from tests.image_hosts import FakeDNS, loopback_image_server_only
from tests.images import image_bytes
from tests.running_gateway import GatewayServer

PNG = image_bytes("PNG")
BMP = image_bytes("BMP", size=(40, 40))  # about 4.8 KB: larger than a 2 KB body once inlined
IMAGE_PARAM = "messages[0].content[1].image_url.url"


class _ImageHandler(BaseHTTPRequestHandler):
    server: _ImageServer

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path == "/slow.png":
            self.server.release.wait(10)  # until the test ends
        body = BMP if self.path == "/page.bmp" else PNG
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.hits: list[str] = []
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a gateway that gave up on /slow.png closed the connection: expected

    def url(self, path: str, host: str = "images.test") -> str:
        return f"http://{host}:{self.server_address[1]}{path}"


@pytest.fixture
def image_server() -> Iterator[_ImageServer]:
    server = _ImageServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def fetching_gateway(tmp_path: Path, standin: StandinServer) -> Iterator[Callable[..., GatewayServer]]:
    """Start a gateway in front of `standin` allowing `domains`; `test_doubles` swaps in the loopback fetcher."""
    started: list[GatewayServer] = []

    def start(domains: list[str], *, test_doubles: bool = True, **overrides: Any) -> GatewayServer:
        store = tmp_path / f"store-{len(started)}.sqlite3"
        settings = gateway_settings(
            {CHAT_MODEL: [standin.base_url]}, store_path=store, remote_image_domains=domains, **overrides
        )
        gateway = GatewayServer(settings)
        if test_doubles:
            state = gateway.state
            state.remote_images = RemoteImageFetcher(
                settings, state.metrics, address_rule=loopback_image_server_only, resolver=FakeDNS()
            )
        started.append(gateway.start())
        gateway.wait_ready()
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def _chat(*urls: str) -> dict[str, object]:
    images = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *images]}],
    }


def _post(gateway: GatewayServer, body: dict[str, object], timeout: float = 10) -> httpx.Response:
    return httpx.post(gateway.base_url + "/chat/completions", content=orjson.dumps(body), timeout=timeout)


def _chats_seen(standin: StandinServer) -> list[dict[str, Any]]:
    return [r.body for r in standin.state.requests if r.path == "/v1/chat/completions" and r.body is not None]


def _fetches(gateway: GatewayServer, outcome: str) -> str:
    metrics = httpx.get(gateway.root_url + "/metrics").text
    return next((line for line in metrics.splitlines() if f'fetches_total{{outcome="{outcome}"}}' in line), "")


def test_an_allowed_image_reaches_vllm_inline_never_as_its_url(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"])
    url = image_server.url("/page.png")
    response = _post(gateway, _chat(url))
    assert response.status_code == 200, response.text
    assert image_server.hits == ["/page.png"]
    [seen] = _chats_seen(standin)
    sent = seen["messages"][0]["content"][1]["image_url"]["url"]
    # The media type comes from the bytes (the server said application/octet-stream).
    assert sent == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert "images.test" not in orjson.dumps(seen).decode()
    assert seen["messages"][0]["content"][0] == {"type": "text", "text": "What is this?"}
    assert _fetches(gateway, "ok").endswith(" 1.0")


def test_without_an_allow_list_remote_urls_are_still_refused(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway([], test_doubles=False)
    response = _post(gateway, _chat(image_server.url("/page.png")))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", IMAGE_PARAM)
    assert "remote image URLs are not fetched" in error["message"]
    assert image_server.hits == []
    assert _chats_seen(standin) == []


def test_a_domain_off_the_allow_list_is_a_400_and_nothing_is_fetched(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"])
    # The allowed image comes first: it is not fetched either, as every URL is checked before any fetch.
    response = _post(gateway, _chat(image_server.url("/page.png"), image_server.url("/page.png", host="other.test")))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages[0].content[2].image_url.url")
    assert "the domain other.test is not allowed" in error["message"]
    assert image_server.hits == []
    assert _chats_seen(standin) == []
    assert _fetches(gateway, "refused_domain").endswith(" 1.0")


def test_the_real_rule_refuses_an_allowed_name_resolving_to_loopback(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["localhost"], test_doubles=False)  # the gateway exactly as deployed
    response = _post(gateway, _chat(image_server.url("/page.png", host="localhost")))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == IMAGE_PARAM
    assert "localhost resolves to a non-public address" in error["message"]
    assert "127.0.0.1" not in error["message"]
    assert image_server.hits == []
    assert _chats_seen(standin) == []


def test_too_many_remote_images_in_one_request_is_a_400(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"], remote_image_max_per_request=2)
    response = _post(gateway, _chat(*[image_server.url(f"/{i}.png") for i in range(3)]))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages[0].content[3].image_url.url"
    assert "at most 2 remote image URLs" in error["message"]
    assert image_server.hits == []
    assert _post(gateway, _chat(image_server.url("/0.png"), image_server.url("/1.png"))).status_code == 200
    assert sorted(image_server.hits) == ["/0.png", "/1.png"]  # fetched at once, in whatever order


def test_the_body_with_images_inlined_is_still_held_to_the_body_limit(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"], max_body_bytes=2048)
    response = _post(gateway, _chat(image_server.url("/page.bmp")))
    assert response.status_code == 413
    assert "with its remote images inlined" in response.json()["error"]["message"]
    assert _chats_seen(standin) == []


def test_a_client_that_leaves_cancels_the_fetch(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"])
    with pytest.raises(httpx.ReadTimeout):
        _post(gateway, _chat(image_server.url("/slow.png")), timeout=0.5)
    deadline = time.monotonic() + 3.0  # well before the fetch's own 10 s deadline
    while not _fetches(gateway, "cancelled").endswith(" 1.0"):
        assert time.monotonic() < deadline, "the fetch went on after the client left"
        time.sleep(0.05)
    assert _chats_seen(standin) == []


def _ocr(gateway: GatewayServer, image: str) -> httpx.Response:
    return httpx.post(gateway.root_url + "/v1/ocr", json={"image": image, "model": CHAT_MODEL}, timeout=30)


def test_a_document_image_may_be_an_allowed_url(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    gateway = fetching_gateway(["images.test"])
    response = _ocr(gateway, image_server.url("/page.png"))
    assert response.status_code == 200, response.text
    assert response.json()["pages"][0]["width"] == 32  # tests/images.py's PNG, as fetched
    assert image_server.hits == ["/page.png"]
    [seen] = _chats_seen(standin)
    assert "images.test" not in orjson.dumps(seen).decode()


def test_a_document_url_is_capped_by_the_upload_limit_and_refused_without_an_allow_list(
    fetching_gateway: Callable[..., GatewayServer], standin: StandinServer, image_server: _ImageServer
) -> None:
    capped = fetching_gateway(["images.test"], max_body_bytes=2048)  # smaller than remote_image_max_bytes
    too_large = _ocr(capped, image_server.url("/page.bmp"))
    assert too_large.status_code == 400
    assert too_large.json()["error"]["param"] == "image"
    assert "larger than this gateway's limit of 2048 bytes" in too_large.json()["error"]["message"]
    closed = fetching_gateway([], test_doubles=False)
    refused = _ocr(closed, image_server.url("/page.png"))
    assert refused.status_code == 400
    assert "remote image URLs are not fetched" in refused.json()["error"]["message"]
    assert _chats_seen(standin) == []


@pytest.mark.parametrize(
    "part",
    [
        {"image_url": {"url": "{url}"}},
        {"image_url": "{url}"},
        {"type": "input_image", "image_url": "{url}"},
        {"type": "video_url", "video_url": {"url": "{url}"}},
        {"type": "audio_url", "audio_url": {"url": "{url}"}},
        {"type": "text", "text": "hi", "image_url": {"url": "{url}"}},
    ],
)
def test_urls_in_other_content_parts_never_reach_vllm(
    fetching_gateway: Callable[..., GatewayServer],
    standin: StandinServer,
    image_server: _ImageServer,
    part: dict[str, object],
) -> None:
    # vLLM parses these as media and would fetch the URL itself, from inside the GPU network. Even with the URL's
    # domain on the allow-list, the gateway refuses them: only image_url parts are vetted and inlined.
    gateway = fetching_gateway(["images.test"])
    url = image_server.url("/page.png")
    part = orjson.loads(orjson.dumps(part).replace(b"{url}", url.encode()))
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]}
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=10)
    with client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**body)  # type: ignore[call-overload]
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert _chats_seen(standin) == []
    assert image_server.hits == []
