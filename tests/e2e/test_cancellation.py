"""A client that leaves makes the gateway drop the upstream request, so vLLM frees the sequence's slot."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.pdfs import plain_pdf
from tests.running_gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]


def _chat_requests(standin: StandinServer) -> list[str]:
    return [r.outcome for r in standin.state.requests if r.path == "/v1/chat/completions"]


def test_leaving_while_vllm_thinks_aborts_the_upstream_request(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    slow = make_standin(CHAT_MODEL, latency_s=5.0)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=30)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/chat/completions", json={"model": CHAT_MODEL, "messages": HI}, timeout=0.5)
    assert slow.state.wait_for(lambda: _chat_requests(slow) == ["aborted"], timeout=3.0), _chat_requests(slow)
    assert slow.state.running == 0
    # nginx's "client closed request", so dashboards can tell abandoned requests from served ones.
    line = 'gateway_requests_total{model="qwen3-vl-2b",route="/v1/chat/completions",status="499"} 1.0'
    # The gateway finishes its own bookkeeping just after the upstream sees the abort.
    assert slow.state.wait_for(lambda: line in httpx.get(gateway.root_url + "/metrics").text, timeout=3.0)


def test_leaving_mid_stream_aborts_the_upstream_stream(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    slow = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 50), tokens_per_s=10)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]})
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=10) as response:
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    # Closing the client's stream after one chunk, about 4.5 s before the reply would end.
    assert slow.state.wait_for(lambda: _chat_requests(slow) == ["aborted"], timeout=3.0), _chat_requests(slow)


def test_leaving_before_the_first_token_aborts_the_upstream_stream(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # vLLM sends the 200 and SSE headers at once and then thinks; the gateway relays them and keeps listening.
    slow = make_standin(CHAT_MODEL, latency_s=5.0)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=30)
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=0.5)
    assert slow.state.wait_for(lambda: _chat_requests(slow) == ["aborted"], timeout=3.0), _chat_requests(slow)


def test_a_document_whose_client_left_sends_no_more_pages_and_aborts_those_at_the_model(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=1.0)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, page_concurrency=2)
    files = {"file": ("twenty.pdf", plain_pdf(pages=20), "application/pdf")}
    request = httpx.Request("POST", gateway.root_url + "/v1/ocr", files=files)
    head = "POST /v1/ocr HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items() if name.lower() != "host"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as client:
        client.sendall(head.encode() + b"\r\n" + request.read())
        # The client leaves once two pages are at the model, 18 still to go.
        assert dots.state.wait_for(lambda: dots.state.running == 2, timeout=10.0)
    assert dots.state.wait_for(lambda: dots.state.aborted_count >= 1 and dots.state.running == 0, timeout=5.0), (
        _chat_requests(dots)
    )
    sent = len(_chat_requests(dots))
    # Nothing more follows: had the pages gone on, two more would reach the model every second.
    assert not dots.state.wait_for(lambda: len(_chat_requests(dots)) > sent, timeout=2.5)
    assert sent < 20
