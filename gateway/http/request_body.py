"""Reading an ASGI request body with a size limit (refusing early when the client announces too much),
and parsing it as the JSON object every JSON endpoint expects."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BodyTooLarge, InvalidRequest
from gateway.http.disconnect import ClientDisconnected
from gateway.http.error_handlers import send_error_response


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case), straight from the ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def check_declared_length(scope: Scope, limit: int) -> None:
    """Refuse a body whose Content-Length already says it is too large (or is not a number), before reading it."""
    declared = header(scope, b"content-length")
    if declared is not None:
        # At most 19 digits: Python will not even convert a string of 4,300 digits to an int.
        if not declared.isdigit() or len(declared) > 19:
            raise InvalidRequest("the Content-Length header is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(f"the request body ({int(declared)} bytes) exceeds the limit of {limit} bytes")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    check_declared_length(scope, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """The body parsed as a JSON object, or InvalidRequest saying what is wrong with it."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not {json_type(data)}")
    return data


def json_type(value: Any) -> str:
    """How to name a JSON value's type in an error message."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


class BodyLimit:
    """Pure ASGI: `GATEWAY_MAX_BODY_BYTES` for FastAPI's routes (the chat hot path checks its own in read_body).

    Replaces FastAPI's `max_body_size`, whose Starlette middleware answers a declared oversize body with a
    plain-text 413 of its own, even over an error response the route already rendered. Here a declared size
    over the limit is answered at once in the OpenAI shape; a body that grows past it while being read (chunked,
    or lying about its length) makes `receive` raise BodyTooLarge, which the route's error handlers render.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_declared_length(scope, self.limit)
        except InvalidRequest as refused:
            await send_error_response(send, refused)
            return
        limit = self.limit
        size = 0

        async def counted_receive() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, counted_receive, send)
