"""What a connection may cost before its request runs (gateway/http/connection_guard.py), over raw loopback sockets.

Every refusal is answered in the OpenAI error shape and the connection is closed; the gateway keeps serving.
Sockets have generous timeouts: a test fails on a missing answer, never on how fast it came.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress

import httpx
import orjson
import pytest

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.running_gateway import GatewayServer

_WAIT_S = 10.0  # the longest any answer may take before the test fails


@pytest.fixture
def guarded(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> GatewayServer:
    """A gateway with short client timeouts, so that slow clients are refused within the test."""
    return make_gateway({CHAT_MODEL: [standin.base_url]}, header_timeout_s=0.5, body_timeout_s=0.5)


def _connect(gateway: GatewayServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=_WAIT_S)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _error(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"content-type: application/json" in head
    assert b"connection: close" in head
    error: dict[str, object] = orjson.loads(body)["error"]
    return error


def _refused(gateway: GatewayServer, reason: str) -> str:
    metrics = httpx.get(gateway.root_url + "/metrics").text
    return next((line for line in metrics.splitlines() if f'refused_total{{reason="{reason}"}}' in line), "")


def _wait_for_connections(gateway: GatewayServer, count: int) -> None:
    deadline = time.monotonic() + _WAIT_S
    while len(gateway.server_state.connections) > count:
        assert time.monotonic() < deadline, "the gateway's connections did not close"
        time.sleep(0.02)


def _still_serves(gateway: GatewayServer) -> None:
    chat = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(gateway.base_url + "/chat/completions", json=chat, timeout=_WAIT_S).status_code == 200


@pytest.mark.parametrize("size", [70 * 1024, 16 * 1024 * 1024])
def test_oversize_headers_are_a_431_and_not_read_whole(guarded: GatewayServer, size: int) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with _connect(guarded) as sock:
        # Sent from a thread: the server stops parsing at the limit and drops the rest, so this may end early.
        sender = threading.Thread(target=_send_all, args=(sock, request), daemon=True)
        sender.start()
        error = _error(_answer(sock), 431)
        sender.join(_WAIT_S)
    assert error["code"] == "headers_too_large"
    assert error["type"] == "invalid_request_error"
    assert "65,536" in str(error["message"])
    assert _refused(guarded, "headers_too_large").endswith(" 1.0")
    _still_serves(guarded)


def _send_all(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):  # the gateway may close the connection after its answer
        sock.sendall(data)


def test_too_many_headers_are_a_431(guarded: GatewayServer) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    with _connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n" + headers + b"\r\n")
        error = _error(_answer(sock), 431)
    assert error["code"] == "headers_too_large"
    assert "151 headers" in str(error["message"])
    # Below the limit: answered as usual.
    assert httpx.get(guarded.root_url + "/health", headers={f"X-H{i}": "v" for i in range(90)}).status_code == 200


def test_an_idle_connection_is_closed_with_a_408(guarded: GatewayServer) -> None:
    with _connect(guarded) as sock:
        error = _error(_answer(sock), 408)  # nothing sent at all
    assert error["code"] == "client_too_slow"
    assert _refused(guarded, "header_timeout").endswith(" 1.0")


def test_dribbled_headers_do_not_extend_the_deadline(guarded: GatewayServer) -> None:
    with _connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        for _ in range(100):  # a header byte every 50 ms, for at most 5 s: the deadline (0.5 s) comes first
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.05)
        error = _error(_answer(sock), 408)
    assert "headers did not arrive" in str(error["message"])


def test_a_stalled_body_is_a_408(guarded: GatewayServer) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    with _connect(guarded) as sock:
        sock.sendall(head + b"Content-Length: 1000\r\n\r\n" + b'{"model": ')  # then nothing more
        error = _error(_answer(sock), 408)
    assert "body stopped arriving" in str(error["message"])
    assert _refused(guarded, "body_timeout").endswith(" 1.0")
    _still_serves(guarded)


def test_a_slow_body_that_keeps_coming_is_not_refused(guarded: GatewayServer) -> None:
    body = orjson.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nConnection: close\r\n"
    with _connect(guarded) as sock:
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 8):  # 8 bytes every 0.2 s: slower in all than the 0.5 s body timeout
            sock.sendall(body[start : start + 8])
            time.sleep(0.2)
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_connections_over_the_cap_are_refused_at_once(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer
) -> None:
    cap = 8
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, max_connections=cap, header_timeout_s=5.0)
    _wait_for_connections(gateway, 0)  # the readiness checks' connections, closing
    with ExitStack() as held:
        for _ in range(cap):
            held.enter_context(_connect(gateway))
        with _connect(gateway) as extra:
            error = _error(_answer(extra), 503)
        assert error["code"] == "too_many_connections"
        assert error["type"] == "service_unavailable"
    _wait_for_connections(gateway, 0)
    _still_serves(gateway)  # the held connections are gone: room again
    assert _refused(gateway, "too_many_connections").endswith(" 1.0")
