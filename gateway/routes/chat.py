"""POST /v1/chat/completions: route by `model`, forward the client's bytes, relay the answer."""

from __future__ import annotations

import time

import aiohttp
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.chat_request import inspect_chat_request
from gateway.deps import StateDep
from gateway.disconnect import run_unless_disconnected
from gateway.errors import ModelNotFound, UpstreamProtocolError, UpstreamTimeout
from gateway.metrics import GatewayMetrics
from gateway.request_body import read_body
from gateway.schemas import ERROR_RESPONSES, ChatCompletionRequest
from gateway.served_models import ServedModel
from gateway.sse_relay import SSERelayResponse
from gateway.upstream import UpstreamClient

router = APIRouter(tags=["OpenAI"])

_UPSTREAM_PATH = "/chat/completions"
_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
    }
}


@router.post(
    "/v1/chat/completions",
    summary="Chat with a vision-language model (OpenAI-compatible, streaming or not)",
    openapi_extra=_OPENAPI_BODY,
    responses={
        200: {
            "description": "a chat.completion object, or an SSE stream of chat.completion.chunk events",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        **ERROR_RESPONSES,
    },
)
async def create_chat_completion(request: Request, state: StateDep) -> Response:
    started = time.perf_counter()
    body = await read_body(request, state.settings.max_body_bytes)
    info = inspect_chat_request(body)
    model = state.models.get(info.model)
    if model is None:
        raise ModelNotFound(info.model)
    request.state.model = model.name
    headers = {"Content-Type": "application/json"}
    request_id = request.headers.get("x-request-id")
    if request_id:
        headers["X-Request-Id"] = request_id
    if info.stream:
        upstream = await run_unless_disconnected(
            request.receive, state.upstream.open_response(model, _UPSTREAM_PATH, body, headers)
        )
        if not upstream.content_type.startswith("text/event-stream"):
            upstream.close()
            raise UpstreamProtocolError(f"model {model.name}: asked for a stream, got {upstream.content_type}")
        return SSERelayResponse(upstream, model=model.name, metrics=state.metrics, started=started)
    answer = await run_unless_disconnected(
        request.receive, _fetch_completion(state.upstream, model, body, headers, state.metrics)
    )
    return Response(answer, media_type="application/json")


async def _fetch_completion(
    client: UpstreamClient, model: ServedModel, body: bytes, headers: dict[str, str], metrics: GatewayMetrics
) -> bytes:
    response = await client.open_response(model, _UPSTREAM_PATH, body, headers)
    try:
        answer = await response.read()  # releases the connection to the pool once complete
    except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
        metrics.upstream_errors.labels(model.name, "timeout").inc()
        raise UpstreamTimeout(f"model {model.name}: the upstream went silent mid-answer") from exc
    except aiohttp.ClientError as exc:
        metrics.upstream_errors.labels(model.name, "invalid_response").inc()
        raise UpstreamProtocolError(f"model {model.name}: the answer broke off ({type(exc).__name__})") from exc
    finally:
        # Abandoned half-read (an error, or the client left): drop the connection so vLLM aborts.
        if not response.content.at_eof():
            response.close()
    if not _is_json_object(answer):
        metrics.upstream_errors.labels(model.name, "invalid_response").inc()
        raise UpstreamProtocolError(f"model {model.name}: the upstream's answer is not a JSON object")
    return answer


def _is_json_object(answer: bytes) -> bool:
    # Answers are small next to the request (no images), so a full parse costs microseconds.
    try:
        return isinstance(orjson.loads(answer), dict)
    except orjson.JSONDecodeError:
        return False
