"""A wall-clock cap on each request, and an OpenAI-shaped end for any request cut short.

`GATEWAY_REQUEST_TIMEOUT_S` caps the whole of a chat completion, an OCR or a layout request (not jobs, which
run in the background, nor health, metrics or the model list). A client may ask for less with
`X-Request-Timeout: <seconds>`; it can only shorten the cap, and a value that is not a positive number is a
400 naming the header.

When the cap passes, the request's task is cancelled within 0.1 s (by gateway/http/deadline_clock.py: one timer
for all requests; a per-request `asyncio.timeout` cost three times this whole layer). The cancellation runs
the route's own cleanup, as a departing client's does (gateway/http/disconnect.py): the upstream connection is
closed, so vLLM aborts the sequence, and a document's page requests are cancelled.

Cancellations meet here, and each is told apart by counting, as `asyncio.timeout` does. The disconnect
watcher's own has already become `ClientDisconnected` by the time it gets here (and when it raced the
deadline, the deadline's cancellation is taken back: a disconnect stays a disconnect). The deadline's is the
one the clock requested and no other came with it. Any other cancellation of a request's task comes from the
server: uvicorn cancels what is still running when `GATEWAY_SHUTDOWN_GRACE_S` ends, and would answer it with
a plain-text 500 of its own, or cut a stream. Both end the same way here:

- before the response started: an error response, 504 `timeout` (the deadline) or 503 `service_unavailable`
  (the shutdown), in the OpenAI shape;
- a stream that started: one `data: {"error": ...}` event and `data: [DONE]`, as the chat relay
  (chat/sse_relay.py) ends a stream the upstream broke; never a cut connection;
- a non-stream answer being written: the deadline is disarmed at its first byte (the answer is complete by
  then; only a slow reader could make its writing slow), so only a shutdown can meet one, and nothing clean
  can be said in the middle of a body: the connection is closed.

One class serves both dispatch paths: the hot path's chain (where only the chat route runs) and FastAPI's
middleware stack (every other route; the deadline applies to the paths in `paths`, the shutdown answer to
all). It sits inside MetricsMiddleware, so the metrics count the 504 or 503 the client actually got.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, InvalidRequest, RequestTimeout, ShuttingDown
from gateway.http.deadline_clock import Armed, DeadlineClock
from gateway.http.error_handlers import send_error_response
from gateway.http.sse import DONE, closing_events
from gateway.observability.metrics import GatewayMetrics

HEADER = b"x-request-timeout"
HEADER_NAME = "X-Request-Timeout"
_CONTENT_TYPE = b"content-type"
_EVENT_STREAM = b"text/event-stream"

log = logging.getLogger(__name__)

# Routes with a request deadline besides the chat hot path (jobs run in the background and have none).
DEADLINE_DOCUMENT_PATHS = ("/v1/ocr", "/v1/layout")


def requested_timeout(scope: Scope) -> float | None:
    """The client's `X-Request-Timeout` in seconds, or None without one. InvalidRequest (400) if malformed."""
    for name, value in scope["headers"]:
        if name == HEADER:
            try:
                seconds = float(value)
            except ValueError:
                seconds = math.nan
            if not 0 < seconds < math.inf:  # also refuses nan
                shown = value[:40].decode("latin-1")
                raise InvalidRequest(
                    f"the `{HEADER_NAME}` header must be a positive number of seconds, not {shown!r}",
                    param=HEADER_NAME,
                )
            return seconds
    return None


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name == _CONTENT_TYPE:
            return bytes(value).startswith(_EVENT_STREAM)
    return False


class _Response:
    """What the route has sent so far. Disarms the deadline as a whole (non-stream) answer starts going out."""

    __slots__ = ("_clock", "_send", "armed", "done_sent", "finished", "started", "streaming")

    def __init__(self, send: Send, clock: DeadlineClock) -> None:
        self._send = send
        self._clock = clock
        self.armed: Armed | None = None
        self.started = self.streaming = self.finished = self.done_sent = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.streaming = _is_event_stream(message)
            if not self.streaming and self.armed is not None:
                self._clock.disarm(self.armed)  # the answer is complete; only a slow reader could delay it now
            await self._send(message)
            self.started = True  # only once sent: a send cancelled while waiting to write wrote nothing
            return
        await self._send(message)
        if self.streaming:
            body = message.get("body", b"")
            if body:
                self.done_sent = body.endswith(DONE)
        self.finished = not message.get("more_body", False)


class RequestDeadline:
    """Pure ASGI: the request deadline on `paths`, and the end of any request cut short (module docstring)."""

    def __init__(self, app: ASGIApp, *, limit_s: float, paths: Collection[str], metrics: GatewayMetrics) -> None:
        self.app = app
        self.limit_s = limit_s
        self.paths = frozenset(paths)
        self.metrics = metrics
        self.clock = DeadlineClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = _Response(send, self.clock)
        try:
            if scope["path"] in self.paths:
                await self._with_deadline(scope, receive, send, response)
            else:
                await self._until_cancelled(scope, receive, response)
        except (RequestTimeout, ShuttingDown) as failure:
            if not response.finished:
                await self._cut_short(scope, send, response, failure)

    async def _until_cancelled(self, scope: Scope, receive: Receive, response: _Response) -> None:
        try:
            await self.app(scope, receive, response.send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise _shutting_down() from None

    async def _with_deadline(self, scope: Scope, receive: Receive, send: Send, response: _Response) -> None:
        limit_s, source = self.limit_s, "the gateway's GATEWAY_REQUEST_TIMEOUT_S"
        try:
            asked = requested_timeout(scope)
        except InvalidRequest as exc:
            await send_error_response(send, exc)
            return
        if asked is not None and asked < limit_s:
            limit_s, source = asked, f"its {HEADER_NAME} header"
        task = asyncio.current_task()
        assert task is not None, "must run inside a task"
        cancelling = task.cancelling()
        armed = response.armed = self.clock.arm(task, limit_s)
        try:
            await self.app(scope, receive, response.send)
        except asyncio.CancelledError:
            # The deadline's when the clock cancelled the task and nobody else did (counted, as asyncio.timeout does).
            if armed.fired and task.uncancel() <= cancelling:
                message = f"the request did not finish within {limit_s:g} s, the limit set by {source}"
                raise RequestTimeout(message) from None
            task.uncancel()
            raise _shutting_down() from None
        except BaseException:
            if armed.fired:
                task.uncancel()  # the deadline's cancellation became something else on the way (a disconnect)
            raise
        else:
            if armed.fired:
                task.uncancel()  # the route absorbed it and answered itself
        finally:
            self.clock.disarm(armed)

    async def _cut_short(self, scope: Scope, send: Send, response: _Response, failure: GatewayError) -> None:
        if isinstance(failure, RequestTimeout):
            self.metrics.request_timeouts.labels(scope["path"]).inc()
        log.warning("%s %s cut short: %s", scope["method"], scope["path"], failure.message)
        if not response.started:
            await send_error_response(send, failure)
        elif response.streaming:
            # The relay sends whole events, so this follows a complete one; the upstream was closed on the way out.
            closing = b"" if response.done_sent else closing_events(failure)
            await send({"type": "http.response.body", "body": closing, "more_body": False})
        # else: a non-stream body was being written (only a shutdown gets here); uvicorn closes the connection.


def _shutting_down() -> ShuttingDown:
    # Neither the deadline's cancellation nor the disconnect watcher's: the server cancelled the request at the
    # end of its shutdown grace. Answered, not re-raised: uvicorn would log a traceback and send its own plain
    # 500, or cut the stream.
    return ShuttingDown("the gateway is shutting down; send the request again")
