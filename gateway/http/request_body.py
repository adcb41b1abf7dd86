"""Reading an ASGI request body with a size limit (refusing early when the client announces too much),
and parsing it as the JSON object every JSON endpoint expects."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Scope

from gateway.errors import BodyTooLarge, InvalidRequest
from gateway.http.disconnect import ClientDisconnected


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case), straight from the ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("the Content-Length header is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(f"the request body ({int(declared)} bytes) exceeds the limit of {limit} bytes")
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
