"""SIGTERM: the gateway stops accepting, lets in-flight requests finish within the grace period
(`GATEWAY_SHUTDOWN_GRACE_S`), cancels the rest (dropping their upstream requests, so vLLM aborts them, and
answering their clients in the OpenAI shape), exits.

The gateway runs as `python -m gateway` in a subprocess, as in production, so the signal goes through uvicorn's
own handling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from launchers.vllm_standin import StandinConfig, StandinServer
from tests.conftest import CHAT_MODEL
from tests.pdfs import stroke_bomb_pdf
from tests.ports import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "hi"}]
# uvicorn re-raises the signal it handled once it has shut down, so the process ends "killed by SIGTERM"
# (the conventional exit for a SIGTERM) unless something else handles it.
CLEAN_EXITS = (0, -signal.SIGTERM)


@contextmanager
def _standin(latency_s: float) -> Iterator[StandinServer]:
    server = StandinServer(StandinConfig(models=(CHAT_MODEL,), latency_s=latency_s)).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _gateway_process(
    tmp_path: Path, upstream: StandinServer, grace_s: int
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_MODELS": CHAT_MODEL,
        "GATEWAY_UPSTREAMS": orjson.dumps({CHAT_MODEL: upstream.base_url}).decode(),
        "GATEWAY_STORE_PATH": str(tmp_path / "store.sqlite3"),
        "GATEWAY_SHUTDOWN_GRACE_S": str(grace_s),
        "GATEWAY_HEALTH_INTERVAL_S": "0.2",
        "GATEWAY_LOG_FORMAT": "text",
    }
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"the gateway exited at start-up:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"the gateway never got ready:\n{log_path.read_text()}"
            try:
                if httpx.get(root + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process, root
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _chat(root: str, stream: bool) -> tuple[int, bool]:
    """(status, whether the answer arrived whole)."""
    body = {"model": CHAT_MODEL, "messages": HI, "stream": stream}
    url = root + "/v1/chat/completions"
    if not stream:
        response = httpx.post(url, json=body, timeout=15)
        return response.status_code, response.status_code == 200 and "choices" in response.json()
    with httpx.stream("POST", url, json=body, timeout=15) as streamed:
        lines = [line for line in streamed.iter_lines() if line]
        return streamed.status_code, bool(lines) and lines[-1] == "data: [DONE]"


def _raw_chat(root: str, stream: bool) -> httpx.Response:
    """The whole response, read to its end (raises if the connection is cut)."""
    body = {"model": CHAT_MODEL, "messages": HI, "stream": stream}
    with httpx.stream("POST", root + "/v1/chat/completions", json=body, timeout=15) as response:
        response.read()
        return response


def _wait_refused(root: str, timeout: float) -> bool:
    """True once a new connection to the gateway is refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(root + "/health", timeout=0.5)
        except httpx.ConnectError:
            return True
        time.sleep(0.02)
    return False


def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(tmp_path: Path) -> None:
    grace_s, n = 10, 10
    with _standin(latency_s=2.0) as upstream, _gateway_process(tmp_path, upstream, grace_s) as (process, root):
        with ThreadPoolExecutor(n) as pool:
            futures: list[Future[tuple[int, bool]]] = [pool.submit(_chat, root, i % 2 == 1) for i in range(n)]
            assert upstream.state.wait_for(lambda: upstream.state.running == n, timeout=10), upstream.state.running
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert _wait_refused(root, timeout=1.5), "new connections still accepted after SIGTERM"
            assert not all(future.done() for future in futures)  # refused while the others were still in flight
            results = [future.result(timeout=15) for future in futures]
        assert results == [(200, True)] * n
        assert process.wait(timeout=grace_s + 5) in CLEAN_EXITS
        # Drained, not cut: the exit came once the answers were out, well before the grace period ran out.
        assert time.monotonic() - signalled < grace_s
    outcomes = [r.outcome for r in upstream.state.requests if r.path == "/v1/chat/completions"]
    assert outcomes == ["completed"] * n


def test_requests_outlasting_the_grace_period_are_cancelled_upstream(tmp_path: Path) -> None:
    grace_s = 1
    with _standin(latency_s=20.0) as upstream, _gateway_process(tmp_path, upstream, grace_s) as (process, root):
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(_raw_chat, root, stream) for stream in (False, True)]
            assert upstream.state.wait_for(lambda: upstream.state.running == 2, timeout=10), upstream.state.running
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert process.wait(timeout=grace_s + 5) in CLEAN_EXITS
            assert time.monotonic() - signalled < grace_s + 3
            # Neither client hangs, and both learn why in the OpenAI shape: a 503 for the request that had not
            # begun its answer, one error event and [DONE] ending the stream that had (never a cut connection).
            non_stream, stream = (future.result(timeout=5) for future in futures)
        assert non_stream.status_code == 503
        error = non_stream.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["type"], error["code"]) == ("service_unavailable", "shutting_down")
        assert "shutting down" in error["message"]
        assert stream.status_code == 200
        events = [event for event in stream.content.split(b"\n\n") if event]
        assert events[-1] == b"data: [DONE]"
        assert orjson.loads(events[-2].removeprefix(b"data: "))["error"]["type"] == "service_unavailable"
        log = (tmp_path / "gateway.log").read_text()
        assert "Internal Server Error" not in log
        assert "Exception in ASGI application" not in log

        def outcomes() -> list[str]:
            return [r.outcome for r in upstream.state.requests if r.path == "/v1/chat/completions"]

        assert upstream.state.wait_for(lambda: outcomes() == ["aborted"] * 2, timeout=3), outcomes()
        assert upstream.state.running == 0


def test_shutdown_does_not_wait_for_a_pdf_page_still_rendering(tmp_path: Path) -> None:
    """A hostile PDF (a ~24 KB file PDFium draws for about a minute) is being rendered at SIGTERM: past the grace
    period its render is stopped and the gateway exits, instead of waiting for the drawing to end."""
    with _standin(latency_s=0.0) as upstream, _gateway_process(tmp_path, upstream, grace_s=1) as (process, root):
        files = {"file": ("bomb.pdf", stroke_bomb_pdf(lines=200_000), "application/pdf")}
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, root + "/v1/ocr", files=files, data={"model": CHAT_MODEL}, timeout=30)
            time.sleep(2.0)  # the page is in a render worker by now (a worker starts in well under a second)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                raise AssertionError("the gateway is still waiting for a render 15 s after SIGTERM") from None
            assert process.returncode in CLEAN_EXITS
            assert answer.result().status_code == 503
