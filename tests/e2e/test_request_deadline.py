"""The request deadline (GATEWAY_REQUEST_TIMEOUT_S, X-Request-Timeout) through the real HTTP path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.running_gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image1.jpg"
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 pages
# Generous: the assertions say "about the cap, not the upstream's 20 s", never how close to the cap.
SLACK_S = 3.0


def _chat(gateway: GatewayServer, timeout_header: str | None = None) -> httpx.Response:
    headers = {"X-Request-Timeout": timeout_header} if timeout_header is not None else {}
    body = {"model": CHAT_MODEL, "messages": HI}
    return httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def _outcomes(standin: StandinServer) -> list[str]:
    return [r.outcome for r in standin.state.requests if r.path == "/v1/chat/completions"]


def _all_aborted(standin: StandinServer, count: int) -> bool:
    return standin.state.wait_for(lambda: _outcomes(standin) == ["aborted"] * count, timeout=3.0)


def _metric(gateway: GatewayServer, line: str) -> bool:
    deadline = time.monotonic() + 3
    while line not in httpx.get(gateway.root_url + "/metrics").text:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def slow(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(CHAT_MODEL, latency_s=20.0)


def test_a_slow_answer_is_a_504_at_the_cap_and_aborted_upstream(
    make_gateway: Callable[..., GatewayServer], slow: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=60, request_timeout_s=1)
    started = time.monotonic()
    response = _chat(gateway)
    assert time.monotonic() - started < 1 + SLACK_S
    assert response.status_code == 504
    error = _error(response)
    assert (error["type"], error["code"]) == ("timeout", "request_timeout")
    assert "within 1 s" in error["message"]
    assert "GATEWAY_REQUEST_TIMEOUT_S" in error["message"]
    assert "x-request-id" in response.headers
    assert _all_aborted(slow, 1), _outcomes(slow)
    assert _metric(gateway, 'gateway_request_timeouts_total{route="/v1/chat/completions"} 1.0')
    assert _metric(gateway, 'gateway_requests_total{model="qwen3-vl-2b",route="/v1/chat/completions",status="504"} 1.0')


def test_the_header_shortens_the_cap(make_gateway: Callable[..., GatewayServer], slow: StandinServer) -> None:
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=60, request_timeout_s=30)
    started = time.monotonic()
    response = _chat(gateway, "0.5")
    assert time.monotonic() - started < 0.5 + SLACK_S
    assert response.status_code == 504
    message = _error(response)["message"]
    assert "within 0.5 s" in message
    assert "X-Request-Timeout" in message
    assert _all_aborted(slow, 1), _outcomes(slow)


def test_the_header_cannot_lengthen_the_cap(make_gateway: Callable[..., GatewayServer], slow: StandinServer) -> None:
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=60, request_timeout_s=1)
    started = time.monotonic()
    response = _chat(gateway, "30")
    assert time.monotonic() - started < 1 + SLACK_S
    assert response.status_code == 504
    assert "GATEWAY_REQUEST_TIMEOUT_S" in _error(response)["message"]


def test_a_bad_header_is_a_400_naming_it(gateway: GatewayServer, standin: StandinServer) -> None:
    response = _chat(gateway, "ten")
    assert response.status_code == 400
    error = _error(response)
    assert (error["type"], error["param"]) == ("invalid_request_error", "X-Request-Timeout")
    assert "X-Request-Timeout" in error["message"]
    assert _outcomes(standin) == []  # never reached the model
    assert _chat(gateway, "10").status_code == 200


def test_a_stream_outliving_its_deadline_ends_with_an_error_event_and_done(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    long = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 100), tokens_per_s=10)  # 10 s per whole stream
    gateway = make_gateway({CHAT_MODEL: [long.base_url]}, request_timeout_s=1.5)
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    started = time.monotonic()
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_raw())  # ends cleanly: a cut connection would raise here
    assert time.monotonic() - started < 1.5 + SLACK_S
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    error = orjson.loads(events[-2].removeprefix(b"data: "))["error"]
    assert (error["type"], error["code"]) == ("timeout", "request_timeout")
    content = [e for e in events[:-2] if b'"content"' in e]
    assert content, "no token reached the client before the deadline"
    assert all(e.startswith(b"data: {") for e in events[:-1])  # whole events only
    assert _all_aborted(long, 1), _outcomes(long)
    assert _metric(gateway, 'gateway_request_timeouts_total{route="/v1/chat/completions"} 1.0')


def test_a_client_leaving_while_a_deadline_is_armed_is_a_disconnect_not_a_timeout(
    make_gateway: Callable[..., GatewayServer], slow: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=60, request_timeout_s=2)
    body = {"model": CHAT_MODEL, "messages": HI}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=0.5)
    assert _all_aborted(slow, 1), _outcomes(slow)
    assert _metric(gateway, 'gateway_requests_total{model="qwen3-vl-2b",route="/v1/chat/completions",status="499"} 1.0')
    time.sleep(2)  # past the deadline the request would have had
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert "gateway_request_timeouts_total{" not in metrics
    assert 'status="504"' not in metrics


@pytest.fixture
def slow_dots(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=20.0)


@pytest.mark.parametrize(("document", "pages"), [(PAGE, 1), (CALENDAR, 2)])
def test_a_document_past_its_deadline_is_a_504_and_its_pages_are_aborted(
    make_gateway: Callable[..., GatewayServer], slow_dots: StandinServer, document: Path, pages: int
) -> None:
    # 4 s: room for the render pool to start and draw the pages on a loaded 2-core machine, so that every page
    # reaches the model before the deadline and the test sees each of them aborted.
    gateway = make_gateway({OCR_MODEL: [slow_dots.base_url]}, read_timeout_s=60, request_timeout_s=4)
    started = time.monotonic()
    files = {"file": (document.name, document.read_bytes())}
    response = httpx.post(gateway.root_url + "/v1/ocr", files=files, timeout=30)
    assert time.monotonic() - started < 4 + SLACK_S
    assert response.status_code == 504
    assert _error(response)["type"] == "timeout"
    assert _all_aborted(slow_dots, pages), _outcomes(slow_dots)
    assert _metric(gateway, 'gateway_request_timeouts_total{route="/v1/ocr"} 1.0')


def test_jobs_run_past_the_request_deadline(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # The deadline holds for each page's model work (1.5 s of 3 s allowed), not for the job: three pages, one at a
    # time, take 4.5 s.
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=1.5)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, request_timeout_s=3, page_concurrency=1)
    files = [("file", (f"page{i}.jpg", PAGE.read_bytes(), "image/jpeg")) for i in range(3)]
    submitted = httpx.post(gateway.root_url + "/v1/jobs", files=files, data={"task": "ocr"}, timeout=30)
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 20
    while (job := httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}", timeout=10).json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    assert _outcomes(dots) == ["completed"] * 3


def test_the_deadline_header_is_documented_where_it_applies(gateway: GatewayServer) -> None:
    paths = httpx.get(gateway.root_url + "/openapi.json").json()["paths"]
    for path in ("/v1/chat/completions", "/v1/ocr", "/v1/layout"):
        names = [parameter["name"] for parameter in paths[path]["post"].get("parameters", [])]
        assert "X-Request-Timeout" in names, path
    assert "X-Request-Timeout" not in str(paths["/v1/jobs"])
