"""RequestDeadline as a bare ASGI app: its cancellations against the disconnect watcher's and the server's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.http.disconnect import ClientDisconnected, run_unless_disconnected
from gateway.http.request_deadline import RequestDeadline
from gateway.observability.metrics import GatewayMetrics

PATH = "/v1/chat/completions"
SSE_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
}
EVENT = b'data: {"choices": []}\n\n'


def _scope(path: str = PATH, timeout_header: bytes | None = None) -> Scope:
    headers = [(b"content-type", b"application/json")]
    if timeout_header is not None:
        headers.append((b"x-request-timeout", timeout_header))
    return {"type": "http", "method": "POST", "path": path, "headers": headers, "state": {}}


async def _stays_connected() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class _Cleanup:
    """Work that waits for `seconds` and records whether its cleanup ran (as closing the upstream would)."""

    def __init__(self) -> None:
        self.cleaned = False

    async def wait(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        finally:
            self.cleaned = True


def _deadline(app: Callable[[Scope, Receive, Send], Awaitable[None]], limit_s: float) -> RequestDeadline:
    return RequestDeadline(app, limit_s=limit_s, paths=(PATH,), metrics=GatewayMetrics())


async def _call(app: RequestDeadline, scope: Scope, receive: Receive = _stays_connected) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _error(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    start, body = sent
    assert start["type"] == "http.response.start"
    assert (b"content-type", b"application/json") in start["headers"]
    error: dict[str, Any] = orjson.loads(body["body"])["error"]
    return start["status"], error


def _timeouts(app: RequestDeadline) -> float:
    value = app.metrics.registry.get_sample_value("gateway_request_timeouts_total", {"route": PATH})
    return value or 0.0


def _closing_event(sent: list[Message]) -> dict[str, Any]:
    last = sent[-1]
    assert last["more_body"] is False
    error_event, done, tail = last["body"].split(b"\n\n")
    assert (done, tail) == (b"data: [DONE]", b"")
    error: dict[str, Any] = orjson.loads(error_event.removeprefix(b"data: "))["error"]
    return error


async def test_a_deadline_firing_inside_run_unless_disconnected_is_a_504_and_runs_the_cleanup() -> None:
    work = _Cleanup()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await run_unless_disconnected(receive, work.wait(10))

    app = _deadline(route, limit_s=0.05)
    status, error = _error(await _call(app, _scope()))
    assert status == 504
    assert (error["type"], error["code"]) == ("timeout", "request_timeout")
    assert "within 0.05 s" in error["message"]
    assert "GATEWAY_REQUEST_TIMEOUT_S" in error["message"]
    assert work.cleaned
    assert _timeouts(app) == 1
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # no cancellation left behind


async def test_the_header_shortens_the_limit_and_says_so() -> None:
    work = _Cleanup()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await work.wait(10)

    status, error = _error(await _call(_deadline(route, limit_s=30), _scope(timeout_header=b"0.05")))
    assert status == 504
    assert "within 0.05 s" in error["message"]
    assert "X-Request-Timeout" in error["message"]


async def test_the_header_cannot_lengthen_the_limit() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(10)

    status, error = _error(await _call(_deadline(route, limit_s=0.05), _scope(timeout_header=b"30")))
    assert status == 504
    assert "GATEWAY_REQUEST_TIMEOUT_S" in error["message"]


@pytest.mark.parametrize("value", [b"0", b"-1", b"soon", b"", b"nan", b"inf", b"1s"])
async def test_a_malformed_header_is_a_400_naming_it_and_the_route_never_runs(value: bytes) -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the route ran")

    status, error = _error(await _call(_deadline(route, limit_s=30), _scope(timeout_header=value)))
    assert status == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", "X-Request-Timeout")
    assert "`X-Request-Timeout` header must be a positive number of seconds" in error["message"]


async def test_a_disconnect_while_the_deadline_is_armed_stays_a_disconnect_and_disarms_it() -> None:
    work = _Cleanup()

    async def leaves() -> Message:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await run_unless_disconnected(receive, work.wait(10))

    app = _deadline(route, limit_s=0.3)
    with pytest.raises(ClientDisconnected):
        await _call(app, _scope(), receive=leaves)
    assert work.cleaned
    await asyncio.sleep(0.4)  # past the deadline: its timer was cancelled, so nothing cancels this task now
    assert _timeouts(app) == 0


async def test_a_disconnect_racing_a_deadline_that_already_fired_stays_a_disconnect() -> None:
    task = asyncio.current_task()
    assert task is not None

    async def leaves_once_cancelled() -> Message:
        # The watcher sees the deadline's cancellation requested and cancels too, before the request's task runs.
        # Polled: a cancellation request has no event to wait on, and one loop turn per poll keeps the order exact.
        while task.cancelling() == 0:  # noqa: ASYNC110
            await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await run_unless_disconnected(receive, asyncio.sleep(10))

    app = _deadline(route, limit_s=0.05)
    with pytest.raises(ClientDisconnected):
        await _call(app, _scope(), receive=leaves_once_cancelled)
    assert task.cancelling() == 0  # both cancellations accounted for
    assert _timeouts(app) == 0


async def test_a_route_without_a_deadline_runs_as_long_as_it_needs() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late but fine"})

    sent = await _call(_deadline(route, limit_s=0.01), _scope(path="/v1/jobs", timeout_header=b"0.01"))
    assert sent[-1]["body"] == b"late but fine"


async def test_a_whole_answer_being_written_is_not_cut_by_the_deadline() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await asyncio.sleep(0.15)  # a slow reader: the write waits past the deadline
        await send({"type": "http.response.body", "body": b"{}"})

    sent = await _call(_deadline(route, limit_s=0.05), _scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["body"] == b"{}"


async def test_a_stream_past_its_deadline_ends_with_an_error_event_and_done() -> None:
    work = _Cleanup()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await send(SSE_START)
        await send({"type": "http.response.body", "body": EVENT, "more_body": True})
        await run_unless_disconnected(receive, work.wait(10))

    app = _deadline(route, limit_s=0.05)
    sent = await _call(app, _scope())
    assert sent[1]["body"] == EVENT
    error = _closing_event(sent)
    assert (error["type"], error["code"]) == ("timeout", "request_timeout")
    assert work.cleaned
    assert _timeouts(app) == 1


async def test_a_stream_that_sent_done_only_gets_its_last_empty_body() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await send(SSE_START)
        await send({"type": "http.response.body", "body": EVENT + b"data: [DONE]\n\n", "more_body": True})
        await asyncio.sleep(10)

    sent = await _call(_deadline(route, limit_s=0.05), _scope())
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def _cancelled_by_the_server(route: Callable[[Scope, Receive, Send], Awaitable[None]]) -> list[Message]:
    """Run `route` as uvicorn does, in a task of its own, and cancel that task as uvicorn does at shutdown."""
    app = _deadline(route, limit_s=30)
    sent: list[Message] = []
    running = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        running.set()
        return await _stays_connected()

    request = asyncio.create_task(app(_scope(), receive, send))
    await running.wait()
    await asyncio.sleep(0.01)
    request.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
    await request  # answered, not re-raised
    assert not request.cancelled()
    return sent


async def test_a_request_the_server_cancels_is_a_503_in_the_openai_shape() -> None:
    work = _Cleanup()

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await run_unless_disconnected(receive, work.wait(10))

    status, error = _error(await _cancelled_by_the_server(route))
    assert status == 503
    assert (error["type"], error["code"]) == ("service_unavailable", "shutting_down")
    assert "shutting down" in error["message"]
    assert work.cleaned


async def test_a_stream_the_server_cancels_ends_with_an_error_event_and_done() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await send(SSE_START)
        await send({"type": "http.response.body", "body": EVENT, "more_body": True})
        await run_unless_disconnected(receive, asyncio.sleep(10))

    sent = await _cancelled_by_the_server(route)
    assert sent[1]["body"] == EVENT
    assert _closing_event(sent)["type"] == "service_unavailable"


async def test_a_timeout_error_that_is_not_the_deadline_passes_through() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("the route's own")

    with pytest.raises(TimeoutError, match="the route's own"):
        await _call(_deadline(route, limit_s=30), _scope())


async def test_a_route_that_absorbs_the_deadline_and_answers_itself_leaves_no_cancellation_behind() -> None:
    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await send({"type": "http.response.start", "status": 504, "headers": []})
            await send({"type": "http.response.body", "body": b"its own"})

    sent = await _call(_deadline(route, limit_s=0.05), _scope())
    assert sent[-1]["body"] == b"its own"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
