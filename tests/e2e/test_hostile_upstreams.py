"""A broken or hostile upstream cannot exhaust the gateway: answers and stream events are capped, compressed
answers are neither asked for nor inflated past the cap, and a drip-feeding upstream cannot hold a job for ever."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.hostile_upstream import HostileUpstream
from tests.images import image_bytes
from tests.running_gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]
CAP = 1024 * 1024


@pytest.fixture
def make_hostile() -> Iterator[Callable[..., HostileUpstream]]:
    started: list[HostileUpstream] = []

    def start(mode: str, size: int = 0, model: str = CHAT_MODEL) -> HostileUpstream:
        server = HostileUpstream(model, mode, size).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _chat(gateway: GatewayServer, stream: bool = False) -> httpx.Response:
    body = {"model": CHAT_MODEL, "messages": HI, "stream": stream}
    return httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=30)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_an_answer_over_the_cap_is_a_502_naming_the_limit(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer]
) -> None:
    upstream = make_hostile("huge", size=3 * CAP)
    gateway = make_gateway({CHAT_MODEL: [upstream.base_url]}, max_upstream_answer_bytes=CAP)
    response = _chat(gateway)
    assert response.status_code == 502, response.text[:200]
    error = _error(response)
    assert (error["type"], error["code"]) == ("bad_gateway", "upstream_answer_too_large")
    assert "GATEWAY_MAX_UPSTREAM_ANSWER_BYTES" in error["message"]


def test_compressed_answers_are_not_asked_for_nor_inflated_past_the_cap(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer]
) -> None:
    upstream = make_hostile("gzip_bomb", size=40 * CAP)  # ~40 KB of gzip
    gateway = make_gateway({CHAT_MODEL: [upstream.base_url]}, max_upstream_answer_bytes=CAP)
    response = _chat(gateway)
    assert upstream.chat_headers[-1].get("Accept-Encoding") == "identity"
    assert response.status_code == 502, response.text[:200]
    assert "GATEWAY_MAX_UPSTREAM_ANSWER_BYTES" in _error(response)["message"]


def test_a_small_compressed_answer_is_still_read(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer]
) -> None:
    upstream = make_hostile("gzip_bomb", size=1000)
    gateway = make_gateway({CHAT_MODEL: [upstream.base_url]})
    response = _chat(gateway)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "x" * 1000


def test_a_stream_event_over_the_cap_ends_the_stream_with_an_error_naming_the_limit(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer]
) -> None:
    upstream = make_hostile("endless_event", size=8 * CAP)
    gateway = make_gateway({CHAT_MODEL: [upstream.base_url]}, max_sse_event_bytes=CAP)
    client = OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=30)
    with pytest.raises(Exception, match="GATEWAY_MAX_SSE_EVENT_BYTES"):
        for _ in client.chat.completions.create(model=CHAT_MODEL, messages=HI, stream=True):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("mode", ["ragged_stream", "gzip_stream"])
def test_a_stream_read_in_ragged_or_compressed_pieces_reaches_the_client_byte_for_byte(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer], mode: str
) -> None:
    upstream = make_hostile(mode)
    gateway = make_gateway({CHAT_MODEL: [upstream.base_url]})
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        pieces = list(response.iter_raw())
    assert b"".join(pieces) == upstream.stream  # inflated, nothing lost, reordered or added
    assert all(piece.endswith(b"\n\n") for piece in pieces)  # whole events only, never half of one
    client = OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=30)
    words = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(model=CHAT_MODEL, messages=HI, stream=True)  # type: ignore[arg-type]
    ]
    assert "".join(word or "" for word in words) == "one two, three \n\nfour"


def test_a_job_against_a_drip_feeding_upstream_fails_at_the_page_deadline(
    make_hostile: Callable[..., HostileUpstream], make_gateway: Callable[..., GatewayServer]
) -> None:
    upstream = make_hostile("drip", model=OCR_MODEL)
    # The upstream is never silent for the 5 s read timeout; the page's own deadline is 1 s.
    gateway = make_gateway({OCR_MODEL: [upstream.base_url]}, request_timeout_s=1, read_timeout_s=5)
    files = [("file", ("page.png", image_bytes(size=(200, 200)), "image/png"))]
    submitted = httpx.post(gateway.root_url + "/v1/jobs", files=files, data={"task": "ocr"}, timeout=30)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 15
    while (job := httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}", timeout=10).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, f"the job still runs 15 s after its 1 s page deadline: {job}"
        time.sleep(0.1)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "request_timeout"
    assert "GATEWAY_REQUEST_TIMEOUT_S" in job["error"]["message"]
