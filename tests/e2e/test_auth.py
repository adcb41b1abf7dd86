"""API keys and per-key limits through the real HTTP path (uvicorn), with the OpenAI SDK where it fits."""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.errors import RateLimited
from gateway.security.rate_limit import KeyPolicy, RedisLimiter
from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.images import image_bytes
from tests.ports import free_port
from tests.running_gateway import GatewayServer

KEY = "sk-test-0123456789abcdef"
HI = [{"role": "user", "content": "hi"}]
CHAT_BODY = {"model": CHAT_MODEL, "messages": HI}


def _client(gateway: GatewayServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=10)


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _chat(gateway: GatewayServer, key: str | None = KEY, **body: object) -> httpx.Response:
    headers = _auth(key) if key is not None else {}
    return httpx.post(gateway.base_url + "/chat/completions", json={**CHAT_BODY, **body}, headers=headers, timeout=10)


def _ocr(gateway: GatewayServer, headers: dict[str, str]) -> httpx.Response:
    image = base64.b64encode(image_bytes(size=(64, 64))).decode()
    return httpx.post(
        gateway.base_url + "/ocr", json={"image": image, "model": CHAT_MODEL}, headers=headers, timeout=30
    )


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def keyed(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> GatewayServer:
    return make_gateway({CHAT_MODEL: [standin.base_url]}, api_keys=[KEY])


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), (_auth("sk-wrong-key-of-some-length"), "invalid"), ({"Authorization": KEY}, "missing")],
)
def test_chat_models_and_ocr_refuse_a_missing_or_wrong_key(
    keyed: GatewayServer, headers: dict[str, str], reason: str
) -> None:
    answers = [
        httpx.post(keyed.base_url + "/chat/completions", json=CHAT_BODY, headers=headers),  # the hot path
        httpx.get(keyed.base_url + "/models", headers=headers),  # FastAPI
        _ocr(keyed, headers),
    ]
    for response in answers:
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["type"] == "authentication_error"
        assert error["code"] == "invalid_api_key"
        assert "sk-wrong" not in response.text
    metrics = httpx.get(keyed.root_url + "/metrics", headers=_auth()).text
    assert f'gateway_auth_failures_total{{reason="{reason}"}} 3.0' in metrics


def test_the_sdk_sees_authentication_error_for_a_wrong_key_and_answers_for_the_right_one(
    keyed: GatewayServer,
) -> None:
    with _client(keyed, "sk-not-this-one") as client, pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model=CHAT_MODEL, messages=HI)  # type: ignore[arg-type]
    assert refused.value.status_code == 401
    assert "sk-not-this-one" not in str(refused.value)
    with _client(keyed, "sk-not-this-one") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    with _client(keyed) as client:
        completion = client.chat.completions.create(model=CHAT_MODEL, messages=HI)  # type: ignore[arg-type]
        assert completion.choices[0].message.content
        assert [m.id for m in client.models.list().data] == [CHAT_MODEL]
    assert _ocr(keyed, _auth()).status_code == 200


def test_health_ready_and_docs_stay_open(keyed: GatewayServer) -> None:
    for path in ("/health", "/ready", "/docs", "/openapi.json"):
        assert httpx.get(keyed.root_url + path).status_code == 200, path


def test_with_keys_metrics_needs_one_by_default(keyed: GatewayServer, standin: StandinServer) -> None:
    # The exposition names every upstream URL and key name: not for anyone who can reach the port.
    refused = httpx.get(keyed.root_url + "/metrics")
    assert refused.status_code == 401
    assert standin.base_url not in refused.text
    scraped = httpx.get(keyed.root_url + "/metrics", headers=_auth())
    assert scraped.status_code == 200
    assert "gateway_requests_total" in scraped.text


def test_metrics_can_be_opened_explicitly(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, api_keys=[KEY], metrics_require_key=False)
    assert httpx.get(gateway.root_url + "/metrics").status_code == 200
    assert httpx.get(gateway.root_url + "/health").status_code == 200


def test_without_keys_the_gateway_is_open_and_says_so(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        gateway = make_gateway({CHAT_MODEL: [standin.base_url]})
    assert "no API keys configured" in caplog.text
    assert _chat(gateway, key=None).status_code == 200
    assert "x-ratelimit-limit-requests" not in _chat(gateway, key=None).headers


def test_requests_over_the_per_minute_limit_get_429_with_retry_after(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, api_keys=[KEY], default_rpm=3)
    with _client(gateway) as client:
        for remaining in ("2", "1", "0"):
            raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=HI)  # type: ignore[arg-type]
            assert raw.http_response.status_code == 200
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            assert raw.headers["x-ratelimit-remaining-requests"] == remaining
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=CHAT_MODEL, messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            client.models.list()  # one budget for every route
    response = refused.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert KEY not in response.text
    # The scrape needs the key but spends none of its budget (the key is out of requests here).
    metrics = httpx.get(gateway.root_url + "/metrics", headers=_auth()).text
    assert 'gateway_rate_limited_total{key="key-1",limit="requests"} 2.0' in metrics
    assert KEY not in metrics
    # Another key has its own budget.
    other = make_gateway({CHAT_MODEL: [standin.base_url]}, api_keys=[KEY, "sk-other-key"], default_rpm=3)
    assert _chat(other, "sk-other-key").status_code == 200


def _keys_file(tmp_path: Path, **limits: int) -> Path:
    path = tmp_path / "keys.yaml"
    extra = "".join(f", {name}: {value}" for name, value in limits.items())
    path.write_text(f"- {{name: team-a, key: {KEY}{extra}}}\n")
    return path


class _Stream:
    """A streaming chat request under way: its first event arrived, the rest is still coming."""

    def __init__(self, gateway: GatewayServer, client: httpx.Client, **body: object) -> None:
        body = {**CHAT_BODY, "stream": True, **body}
        request = client.build_request("POST", gateway.base_url + "/chat/completions", json=body, headers=_auth())
        self.response = client.send(request, stream=True)
        assert self.response.status_code == 200
        assert self.response.headers["x-ratelimit-limit-requests"] == "100"
        self.chunks = self.response.iter_raw()  # kept: dropping the iterator would close the connection
        assert next(self.chunks).startswith(b"data: ")

    def rest(self) -> bytes:
        return b"".join(self.chunks)

    def close(self) -> None:
        self.chunks.close()
        self.response.close()


def test_a_concurrency_slot_is_held_to_the_last_byte_of_a_stream_and_freed_on_disconnect(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer], tmp_path: Path
) -> None:
    slow = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 100), tokens_per_s=20)  # 5 s per whole stream
    path = _keys_file(tmp_path, max_concurrency=2, requests_per_minute=100)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, keys_file=path)
    with httpx.Client(timeout=10) as client:
        first = _Stream(gateway, client, max_tokens=6)  # about 0.3 s
        second = _Stream(gateway, client)
        with _client(gateway) as sdk, pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(model=CHAT_MODEL, messages=HI)  # type: ignore[arg-type]
        assert refused.value.response.headers["retry-after"] == "1"
        assert refused.value.body["code"] == "concurrency_limit_exceeded"  # type: ignore[index]
        # The first stream runs to its end: its slot frees with its last byte.
        assert b"data: [DONE]" in first.rest()
        first.close()
        assert _wait_until(lambda: _chat(gateway, max_tokens=1).status_code == 200)
        # The second client leaves mid-stream: its slot frees too.
        third = _Stream(gateway, client)
        assert _chat(gateway).status_code == 429
        second.close()
        assert _wait_until(lambda: _chat(gateway, max_tokens=1).status_code == 200)
        third.close()
    metrics = httpx.get(gateway.root_url + "/metrics", headers=_auth()).text
    assert 'gateway_rate_limited_total{key="team-a",limit="concurrency"}' in metrics


def test_the_key_never_reaches_the_logs(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, api_keys=[KEY], default_rpm=1)
        assert _chat(gateway).status_code == 200
        over = _chat(gateway)
        wrong = _chat(gateway, KEY + "x")
    assert over.status_code == 429
    assert wrong.status_code == 401
    assert caplog.records  # the gateway did log (start-up, requests); none of it holds the key
    assert KEY not in caplog.text
    assert KEY not in over.text + wrong.text


# --- Redis: several gateways, one limit ---------------------------------------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, without persistence, stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        assert _wait_until(answers), "redis-server did not start"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(5)


def test_two_gateways_sharing_redis_enforce_one_limit(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer, redis_url: str
) -> None:
    upstreams = {CHAT_MODEL: [standin.base_url]}
    one = make_gateway(upstreams, api_keys=[KEY], default_rpm=3, redis_url=redis_url)
    two = make_gateway(upstreams, api_keys=[KEY], default_rpm=3, redis_url=redis_url)
    remaining = [_chat(gateway).headers["x-ratelimit-remaining-requests"] for gateway in (one, two, one)]
    assert remaining == ["2", "1", "0"]
    refused = _chat(two)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert _chat(one).status_code == 429


def test_two_gateways_sharing_redis_share_concurrency_slots(
    make_standin: Callable[..., StandinServer],
    make_gateway: Callable[..., GatewayServer],
    redis_url: str,
    tmp_path: Path,
) -> None:
    slow = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 100), tokens_per_s=20)
    path = _keys_file(tmp_path, max_concurrency=1, requests_per_minute=100)
    one = make_gateway({CHAT_MODEL: [slow.base_url]}, keys_file=path, redis_url=redis_url)
    two = make_gateway({CHAT_MODEL: [slow.base_url]}, keys_file=path, redis_url=redis_url)
    with httpx.Client(timeout=10) as client:
        stream = _Stream(one, client)
        refused = _chat(two)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "concurrency_limit_exceeded"
        stream.close()  # the client leaves; gateway one gives the slot back in Redis
        assert _wait_until(lambda: _chat(two, max_tokens=1).status_code == 200)


async def test_a_crashed_gateways_slots_expire_after_the_lease_ttl(redis_url: str) -> None:
    policy = KeyPolicy("crash-test", requests_per_minute=0, max_concurrency=1)
    crashed = RedisLimiter(redis_url, slot_ttl_s=0.5, fail_open=False)
    await crashed.acquire(policy)
    await crashed.close()  # gone without releasing, like a killed process
    survivor = RedisLimiter(redis_url, slot_ttl_s=0.5, fail_open=False)
    try:
        with pytest.raises(RateLimited):
            await survivor.acquire(policy)
        held = await survivor.acquire(policy) if await _sleep(0.7) else None
        assert held is not None
        # A live holder renews its lease, so a long request keeps its slot past the TTL.
        await _sleep(1.2)
        with pytest.raises(RateLimited):
            await survivor.acquire(policy)
        await survivor.release(held)
        await survivor.release(await survivor.acquire(policy))
    finally:
        await survivor.close()


async def _sleep(seconds: float) -> bool:
    import asyncio

    await asyncio.sleep(seconds)
    return True


@pytest.mark.parametrize(("fail_open", "status"), [(False, 503), (True, 200)])
def test_an_unreachable_redis_fails_closed_unless_told_otherwise(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer, fail_open: bool, status: int
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    gateway = make_gateway(
        {CHAT_MODEL: [standin.base_url]}, api_keys=[KEY], redis_url=nowhere, redis_fail_open=fail_open
    )
    response = _chat(gateway)
    assert response.status_code == status, response.text
    if status == 503:
        assert response.json()["error"]["type"] == "service_unavailable"
