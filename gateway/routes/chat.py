"""POST /v1/chat/completions: route by `model`, forward the client's bytes, relay the answer.

This is the hot path, so it is a bare ASGI app rather than a FastAPI path operation: FastAPI's request
object and dependency solving cost more per request than the gateway's whole latency budget (see
docs/architecture.md). Errors are still raised as GatewayError and rendered by the app's one set of
handlers; `gateway/openapi.py` documents the route.
"""

from __future__ import annotations

import time

from starlette.types import Receive, Scope, Send

from gateway.chat_request import inspect_chat_request
from gateway.deps import GatewayState
from gateway.disconnect import run_unless_disconnected
from gateway.errors import ModelNotFound, UpstreamProtocolError
from gateway.metrics import GatewayMetrics
from gateway.request_body import read_body
from gateway.served_models import ServedModel
from gateway.sse_relay import SSERelayResponse
from gateway.upstream import UpstreamClient

PATH = "/v1/chat/completions"
_UPSTREAM_PATH = "/chat/completions"


class ChatCompletionsEndpoint:
    """The ASGI app behind POST /v1/chat/completions."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = self._state
        body = await read_body(scope, receive, state.settings.max_body_bytes)
        info = inspect_chat_request(body, state.settings.max_completion_tokens)
        model = state.models.get(info.model)
        if model is None:
            raise ModelNotFound(info.model)
        scope["state"]["model"] = model.name  # read by MetricsMiddleware
        # The request's id (set by RequestIdMiddleware, around every route), so vLLM's logs name the same request.
        headers = {"Content-Type": "application/json", "X-Request-Id": scope["state"]["request_id"]}
        if info.stream:
            upstream = await run_unless_disconnected(
                receive, state.upstream.open_response(model, _UPSTREAM_PATH, body, headers)
            )
            if not upstream.content_type.startswith("text/event-stream"):
                upstream.close()
                raise UpstreamProtocolError(f"model {model.name}: asked for a stream, got {upstream.content_type}")
            relay = SSERelayResponse(upstream, model=model.name, metrics=state.metrics, started=started)
            await relay(scope, receive, send)
            return
        answer = await run_unless_disconnected(
            receive, _fetch_completion(state.upstream, model, body, headers, state.metrics)
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})


async def _fetch_completion(
    client: UpstreamClient, model: ServedModel, body: bytes, headers: dict[str, str], metrics: GatewayMetrics
) -> bytes:
    answer = await client.fetch(model, _UPSTREAM_PATH, body, headers)
    if not _is_json_object(answer):
        metrics.upstream_errors.labels(model.name, "invalid_response").inc()
        raise UpstreamProtocolError(f"model {model.name}: the upstream's answer is not a JSON object")
    return answer


def _is_json_object(answer: bytes) -> bool:
    # A structural check, not a parse: it tells vLLM's JSON from an HTML error page, plain text or a cut-off
    # body, and costs nothing next to a full parse on the hot path. The client parses the answer anyway.
    return answer.lstrip()[:1] == b"{" and answer.rstrip()[-1:] == b"}"
