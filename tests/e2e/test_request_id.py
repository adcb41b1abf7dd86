"""Request ids end to end: accepted or made up, returned on every response, sent on to vLLM, in the logs."""

from __future__ import annotations

import io
import logging
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.observability.log_format import JsonFormatter
from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.running_gateway import GatewayServer

GENERATED = re.compile(r"req-[0-9a-f]{16}")
HI = [{"role": "user", "content": "hi"}]
PAGE = Path(__file__).resolve().parent.parent / "fixtures" / "documents" / "dotsocr_demo_image1.jpg"


def _chat(gateway: GatewayServer, request_id: str | None = None, **body: object) -> httpx.Response:
    headers = {} if request_id is None else {"X-Request-Id": request_id}
    payload = {"model": CHAT_MODEL, "messages": HI, **body}
    return httpx.post(gateway.base_url + "/chat/completions", json=payload, headers=headers, timeout=10)


def _sent_ids(standin: StandinServer) -> list[str | None]:
    return [r.headers.get("x-request-id") for r in standin.state.requests if r.path == "/v1/chat/completions"]


def test_a_sane_client_id_is_returned_and_reaches_vllm(gateway: GatewayServer, standin: StandinServer) -> None:
    request_id = "client-42:retry.1_A"
    response = _chat(gateway, request_id)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    assert _sent_ids(standin) == [request_id]


@pytest.mark.parametrize("insane", ["has space", "semi;colon", "a" * 129, "slash/es", ""])
def test_an_insane_client_id_is_replaced(gateway: GatewayServer, standin: StandinServer, insane: str) -> None:
    response = _chat(gateway, insane)
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert GENERATED.fullmatch(returned)
    assert _sent_ids(standin) == [returned]


def test_the_longest_sane_id_is_kept(gateway: GatewayServer, standin: StandinServer) -> None:
    longest = "x" * 128
    assert _chat(gateway, longest).headers["x-request-id"] == longest


def test_a_missing_id_is_generated_fresh_and_forwarded(gateway: GatewayServer, standin: StandinServer) -> None:
    first, second = _chat(gateway), _chat(gateway)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids)
    assert ids[0] != ids[1]
    assert _sent_ids(standin) == ids
    assert len(first.headers.get_list("x-request-id")) == 1


def test_sse_streams_carry_the_id(gateway: GatewayServer, standin: StandinServer) -> None:
    payload = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    url = gateway.base_url + "/chat/completions"
    with httpx.stream("POST", url, json=payload, headers={"X-Request-Id": "stream-1"}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "stream-1"
        assert response.read().rstrip().endswith(b"data: [DONE]")
    assert _sent_ids(standin) == ["stream-1"]


def test_error_responses_and_fastapi_routes_carry_the_id(gateway: GatewayServer) -> None:
    unknown_model = _chat(gateway, "e-1", model="no-such-model")  # the hot path's error boundary
    assert unknown_model.status_code == 404
    assert unknown_model.headers["x-request-id"] == "e-1"
    bad_json = httpx.post(gateway.base_url + "/chat/completions", content=b"{", headers={"X-Request-Id": "e-2"})
    assert bad_json.status_code == 400
    assert bad_json.headers["x-request-id"] == "e-2"
    for path in ("/v1/nowhere", "/health", "/metrics", "/v1/models"):  # FastAPI's stack, 404 included
        response = httpx.get(gateway.root_url + path, headers={"X-Request-Id": "f-1"})
        assert response.headers["x-request-id"] == "f-1", path
        assert GENERATED.fullmatch(httpx.get(gateway.root_url + path).headers["x-request-id"]), path


@pytest.fixture
def gateway_log() -> Iterator[io.StringIO]:
    """The gateway's log lines as the JSON formatter writes them (formatted where they are logged)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gateway")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_upstream_failure_is_a_5xx_with_the_id_and_logged_under_it(
    make_gateway: Callable[..., GatewayServer], gateway_log: io.StringIO
) -> None:
    gateway = make_gateway({CHAT_MODEL: [f"http://127.0.0.1:{_closed_port()}/v1"]}, wait_ready=False)
    response = _chat(gateway, "down-1")
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "down-1"
    lines = [orjson.loads(line) for line in gateway_log.getvalue().splitlines()]
    logged = [line for line in lines if line.get("request_id") == "down-1"]
    # The circuit breaker's ejection (gateway.upstream.client) is logged under the request that caused it, too.
    answered = [line for line in logged if line["logger"] == "gateway.http.error_handlers"]
    assert len(answered) == 1, lines
    assert answered[0]["level"] == "WARNING"
    assert "503" in answered[0]["message"]
    assert set(answered[0]) == {"ts", "level", "logger", "message", "request_id"}
    # The health prober logs outside any request: no id.
    assert all("request_id" not in line for line in lines if line["logger"] == "gateway.upstream.health_probe")


def test_document_page_requests_carry_the_id(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})
    files = {"file": ("page.jpg", PAGE.read_bytes(), "image/jpeg")}
    response = httpx.post(gateway.root_url + "/v1/layout", files=files, headers={"X-Request-Id": "doc-7"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "doc-7"
    sent = _sent_ids(dots)
    assert sent
    # vLLM adopts X-Request-Id as its own request id: each call carries the document's id and its own suffix.
    assert all(re.fullmatch(r"doc-7-[0-9a-f]{8}", one) for one in sent), sent
    assert len(set(sent)) == len(sent)
    dots.state.clear_requests()
    without = httpx.post(gateway.root_url + "/v1/ocr", files=files, timeout=30)
    assert without.status_code == 200
    assert all(one.startswith(without.headers["x-request-id"] + "-") for one in _sent_ids(dots))


def test_a_jobs_page_requests_carry_the_id_of_the_request_that_submitted_it(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})
    files = {"file": ("page.jpg", PAGE.read_bytes(), "image/jpeg")}
    submitted = httpx.post(
        gateway.root_url + "/v1/jobs", files=files, data={"task": "ocr"}, headers={"X-Request-Id": "job-1"}
    )
    assert submitted.status_code in (200, 202), submitted.text
    assert submitted.headers["x-request-id"] == "job-1"
    job_url = f"{gateway.root_url}/v1/jobs/{submitted.json()['id']}"
    assert dots.state.wait_for(lambda: httpx.get(job_url).json()["status"] in ("succeeded", "failed"), timeout=20)
    assert httpx.get(job_url).json()["status"] == "succeeded"
    assert _sent_ids(dots)
    assert all(re.fullmatch(r"job-1-[0-9a-f]{8}", one) for one in _sent_ids(dots))
