"""POST /v1/chat/completions: route by `model`, forward the client's bytes, relay the answer.

This is the hot path, so it is a bare ASGI app rather than a FastAPI path operation: FastAPI's request
object and dependency solving cost more per request than the gateway's whole latency budget (see
docs/architecture.md). Errors are still raised as GatewayError and rendered by the app's one set of
handlers; `gateway/routes/openapi.py` documents the route.

With a remote-image allow-list (GATEWAY_REMOTE_IMAGE_DOMAINS), http(s) image URLs are fetched here, all at
once, and the body is rebuilt with them as data: URLs before it goes upstream (gateway/security/remote_images.py says
why vLLM never sees the URL). A request without remote URLs is forwarded byte for byte as before.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import Receive, Scope, Send

from gateway.chat.request import RemoteImageRef, inline_image_urls, inspect_chat_request
from gateway.chat.sse_relay import SSERelayResponse
from gateway.errors import BodyTooLarge, InvalidRequest, ModelNotFound, UpstreamProtocolError
from gateway.http.disconnect import run_unless_disconnected
from gateway.http.request_body import read_body
from gateway.observability.metrics import GatewayMetrics
from gateway.routes.dependencies import GatewayState
from gateway.upstream.client import UpstreamClient
from gateway.upstream.served_models import ServedModel

PATH = "/v1/chat/completions"
_UPSTREAM_PATH = "/chat/completions"


class ChatCompletionsEndpoint:
    """The ASGI app behind POST /v1/chat/completions."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state
        self._remote_images = bool(state.settings.remote_image_domains)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = self._state
        body = await read_body(scope, receive, state.settings.max_body_bytes)
        info = inspect_chat_request(body, state.settings.max_completion_tokens, remote_images=self._remote_images)
        model = state.models.get(info.model)
        if model is None:
            raise ModelNotFound(info.model, state.models)
        scope["state"]["model"] = model.name  # read by MetricsMiddleware
        if info.rebuilt_body is not None:  # `guided_*` fields moved to `structured_outputs`
            body = info.rebuilt_body
        if info.remote_images:  # only after the model is known: nothing is fetched for a request bound to fail
            body = await run_unless_disconnected(receive, _inline_remote_images(state, body, info.remote_images))
        # The request's id (set by RequestIdMiddleware, around every route), so vLLM's logs name the same request.
        headers = {"Content-Type": "application/json", "X-Request-Id": scope["state"]["request_id"]}
        if info.stream:
            upstream = await run_unless_disconnected(
                receive, state.upstream.open_response(model, _UPSTREAM_PATH, body, headers)
            )
            if not upstream.content_type.startswith("text/event-stream"):
                upstream.close()
                raise UpstreamProtocolError(f"model {model.name}: asked for a stream, got {upstream.content_type}")
            relay = SSERelayResponse(
                upstream,
                model=model.name,
                metrics=state.metrics,
                started=started,
                max_event_bytes=state.settings.max_sse_event_bytes,
            )
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


async def _inline_remote_images(state: GatewayState, body: bytes, images: tuple[RemoteImageRef, ...]) -> bytes:
    """Fetch the request's remote images concurrently; the body with each as a data: URL in its place."""
    limit = state.settings.remote_image_max_per_request
    if len(images) > limit:
        param = images[limit].param
        raise InvalidRequest(f"`{param}`: a request may name at most {limit} remote image URLs", param=param)
    fetcher = state.remote_images
    for image in images:  # every URL is checked before any is fetched
        fetcher.check_url(image.url, image.param)
    try:
        async with asyncio.TaskGroup() as group:
            fetches = {image: group.create_task(fetcher.fetch(image.url, param=image.param)) for image in images}
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first image that failed; the group cancelled the others
    inlined = inline_image_urls(body, {image: fetch.result().data_url() for image, fetch in fetches.items()})
    size, limit = len(inlined), state.settings.max_body_bytes
    if size > limit:
        message = f"with its remote images inlined, the request body ({size} bytes) exceeds the limit of {limit} bytes"
        raise BodyTooLarge(message)
    return inlined


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
