"""CORS (GATEWAY_CORS_ORIGINS) through the real HTTP path, as a browser would exercise it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.running_gateway import GatewayServer

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
KEY = "sk-test-0123456789abcdef"
HI = [{"role": "user", "content": "hi"}]
# What the OpenAI SDK in a browser asks to send (openai-node: its x-stainless-* family and openai-*).
SDK_HEADERS = "authorization,content-type,x-stainless-os,x-stainless-retry-count,openai-project,x-request-id"


def _preflight(gateway: GatewayServer, path: str, origin: str = APP) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": SDK_HEADERS,
    }
    return httpx.request("OPTIONS", gateway.root_url + path, headers=headers, timeout=10)


def _chat(gateway: GatewayServer, origin: str | None = APP, key: str | None = None) -> httpx.Response:
    headers = {"Origin": origin} if origin is not None else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": CHAT_MODEL, "messages": HI}
    return httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=10)


def _exposed(response: httpx.Response) -> set[str]:
    return {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}


@pytest.fixture
def keyed(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> GatewayServer:
    return make_gateway({CHAT_MODEL: [standin.base_url]}, cors_origins=[APP], api_keys=[KEY])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/ocr"])
def test_a_preflight_is_answered_before_the_key_check(keyed: GatewayServer, path: str) -> None:
    response = _preflight(keyed, path)  # a browser sends no Authorization on a preflight
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= methods
    assert response.headers["access-control-allow-headers"] == SDK_HEADERS  # whatever the SDK asks for
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert "x-request-id" in response.headers


def test_a_preflight_from_another_origin_is_refused(keyed: GatewayServer) -> None:
    response = _preflight(keyed, "/v1/chat/completions", origin=OTHER)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_an_allowed_origin_can_read_the_answer_and_its_headers(keyed: GatewayServer) -> None:
    response = _chat(keyed, key=KEY)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "origin" in response.headers["vary"].lower()
    assert {"x-request-id", "retry-after", "x-ratelimit-remaining-requests"} <= _exposed(response)
    assert response.headers["x-ratelimit-remaining-requests"]  # present, and now readable by the page


def test_another_origin_gets_no_allow_origin(keyed: GatewayServer) -> None:
    response = _chat(keyed, origin=OTHER, key=KEY)
    assert response.status_code == 200  # the server answers; the browser withholds it from the page
    assert "access-control-allow-origin" not in response.headers


def test_a_401_still_carries_the_cors_headers(keyed: GatewayServer) -> None:
    response = _chat(keyed)
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP  # so the page can read why
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_429_still_carries_the_cors_headers_and_exposes_retry_after(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, cors_origins=[APP], api_keys=[KEY], default_rpm=1)
    assert _chat(gateway, key=KEY).status_code == 200
    refused = _chat(gateway, key=KEY)
    assert refused.status_code == 429
    assert refused.headers["access-control-allow-origin"] == APP
    assert "retry-after" in _exposed(refused)
    assert refused.headers["retry-after"]


def test_documents_and_fastapi_routes_carry_the_headers(keyed: GatewayServer) -> None:
    response = httpx.get(keyed.base_url + "/models", headers={"Origin": APP, "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP


def test_any_origin_with_a_star(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, cors_origins=["*"])
    assert _chat(gateway, origin=OTHER).headers["access-control-allow-origin"] == "*"
    assert _preflight(gateway, "/v1/chat/completions", origin=OTHER).headers["access-control-allow-origin"] == "*"


def test_credentials_are_allowed_only_when_configured(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, cors_origins=[APP], cors_allow_credentials=True)
    response = _chat(gateway)
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert _preflight(gateway, "/v1/ocr").headers["access-control-allow-credentials"] == "true"


def test_without_origins_there_is_no_cors_and_options_is_not_special(gateway: GatewayServer) -> None:
    response = _chat(gateway)
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("access-control-")]
    preflight = _preflight(gateway, "/v1/chat/completions")
    assert preflight.status_code == 405  # an OPTIONS like any other: the route takes POST
    assert preflight.json()["error"]["type"] == "invalid_request_error"
    assert not [name for name in preflight.headers if name.startswith("access-control-")]


def test_a_stream_carries_the_header_and_still_streams(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # 5 tokens at 4 tokens/s: if the first content event reaches the client while the stand-in is still
    # generating, nothing between them buffered the stream.
    slow = make_standin(CHAT_MODEL, reply="one two three four five", tokens_per_s=4)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, cors_origins=[APP])
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    still_running_at_first_content = None
    with httpx.stream(
        "POST", gateway.base_url + "/chat/completions", json=body, headers={"Origin": APP}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP
        lines = []
        for line in response.iter_lines():
            if '"content"' in line and still_running_at_first_content is None:
                records = [r for r in slow.state.requests if r.path == "/v1/chat/completions"]
                still_running_at_first_content = not records[-1].completed
            if line:
                lines.append(line)
    assert still_running_at_first_content is True
    assert lines[-1] == "data: [DONE]"
