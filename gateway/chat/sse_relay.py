"""Relaying a vLLM server-sent-event stream to the client as it arrives.

Bytes go out as soon as a complete event (`data: ...\\n\\n`) has arrived; only an incomplete tail is held
back, so a stream is never buffered and a client never sees half an event. If the upstream breaks, times
out or stops without `data: [DONE]`, the client gets one error event in the OpenAI shape and then
`data: [DONE]`, exactly as vLLM ends a stream that failed part-way. If the client leaves, the upstream
response is closed, which makes vLLM abort the sequence. A stream cut short by its deadline or by the
server's shutdown ends the same way, from gateway/http/request_deadline.py.
"""

from __future__ import annotations

import time

import aiohttp
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamTimeout
from gateway.http.disconnect import run_unless_disconnected
from gateway.http.sse import DONE, EVENT_END, closing_events
from gateway.observability.metrics import GatewayMetrics
from gateway.upstream.answer_body import answer_pieces, too_large

_ERROR_EVENT_MARK = b'data: {"error"'
_EVENT_SETTING = "GATEWAY_MAX_SSE_EVENT_BYTES"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies in front not to buffer either
]


class SSERelayResponse(Response):
    """A response that streams an upstream SSE body to the client (its own ASGI call, like StreamingResponse)."""

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        *,
        model: str,
        metrics: GatewayMetrics,
        started: float,
        max_event_bytes: int,
    ) -> None:
        # Starlette's Response.__init__ would render a body; a relay has none, so only set what FastAPI reads.
        self.status_code = 200
        self.background = None
        self._upstream = upstream
        self._model = model
        self._metrics = metrics
        self._started = started
        self._max_event_bytes = max_event_bytes  # GATEWAY_MAX_SSE_EVENT_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await run_unless_disconnected(receive, self._relay(send))
        finally:
            # Closing (not releasing) drops the connection: vLLM sees the disconnect and aborts. After a
            # complete stream the connection was already released to the pool and this does nothing.
            self._upstream.close()

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        # The incomplete tail is a bytearray searched only where the new chunk can complete an event: an upstream
        # that never sends a blank line costs linear time (100 MB once took 12 s of CPU) and at most the cap.
        tail = bytearray()
        first = True
        finished = False
        failure: GatewayError | None = None
        try:
            async for chunk in answer_pieces(self._upstream, model=self._model):
                if not tail and chunk.endswith(EVENT_END):
                    events = chunk  # the usual case, whole events: relayed as they are, nothing copied
                else:
                    search_from = max(0, len(tail) - 1)  # "\n\n" may straddle the old tail and the new chunk
                    tail += chunk
                    end = tail.rfind(EVENT_END, search_from)
                    if end < 0:
                        if len(tail) > self._max_event_bytes:
                            failure = too_large(self._model, "stream event", self._max_event_bytes, _EVENT_SETTING)
                            break
                        continue
                    events = bytes(tail[: end + 2])
                    del tail[: end + 2]
                if first:
                    first = False
                    self._metrics.stream_first_byte.labels(self._model).observe(time.perf_counter() - self._started)
                if _ERROR_EVENT_MARK in events:
                    self._metrics.upstream_errors.labels(self._model, "stream_error_event").inc()
                finished = events.endswith(DONE)
                await send({"type": "http.response.body", "body": events, "more_body": True})
            if not finished and failure is None:
                failure = UpstreamProtocolError(f"model {self._model}: the upstream stream ended without [DONE]")
        except (TimeoutError, aiohttp.SocketTimeoutError):
            failure = UpstreamTimeout(f"model {self._model}: the upstream stream went silent")
        except aiohttp.ClientError as exc:
            failure = UpstreamProtocolError(f"model {self._model}: the upstream stream broke ({type(exc).__name__})")
        except UpstreamProtocolError as exc:  # an encoding it cannot undo
            failure = exc
        if failure is not None:
            kind = "timeout" if isinstance(failure, UpstreamTimeout) else "stream_broken"
            self._metrics.upstream_errors.labels(self._model, kind).inc()
            # A partial event is dropped: it cannot be parsed, and the client gets the reason instead.
            await send({"type": "http.response.body", "body": closing_events(failure), "more_body": True})
        else:
            self._upstream.release()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
