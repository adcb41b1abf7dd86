"""Request ids: one per HTTP request, taken from the client's `X-Request-Id` when sane, else made up.

The id goes in `scope["state"]["request_id"]` (routes read it there), in a context variable (for code that
has no scope: the document page pipeline, the JSON log formatter), into every response's headers as
`x-request-id` (error responses and SSE streams too: it is added to `http.response.start`, whoever sends it),
and to vLLM as `X-Request-Id` (routes/chat.py, page_pipeline.py), so one id ties a client's request, the
gateway's log lines and vLLM's own logs together.

`GatewayApp` wraps its whole dispatch in `RequestIdMiddleware` once, outside both the chat hot path and
FastAPI's middleware stack, so every route gets an id for one extra ASGI layer (pure ASGI, not
BaseHTTPMiddleware, which would buffer streams and break disconnect handling).
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
# Only characters that are safe in a header, a log line and a file name; anything else is replaced.
_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,%d}" % MAX_LENGTH)

_current: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for, or None outside a request (start-up, health probes)."""
    return _current.get()


def new_request_id() -> str:
    """`req-` and 16 hex digits. Ids must be unique, not secret: `random` costs a fraction of `secrets`."""
    return f"req-{random.getrandbits(64):016x}"


def accept_request_id(value: bytes | None) -> str:
    """The client's id when it is sane (at most 128 of `[A-Za-z0-9._:-]`), else a new one."""
    if value is not None and _SANE.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


class RequestIdMiddleware:
    """Pure ASGI: gives every HTTP request an id (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = None
        for key, value in scope["headers"]:
            if key == HEADER:
                client_id = value
                break
        request_id = accept_request_id(client_id)
        scope.setdefault("state", {})["request_id"] = request_id
        pair = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the sender may keep (and reuse) its own.
                message["headers"] = [*message.get("headers", ()), pair]
            await send(message)

        token = _current.set(request_id)
        await self.app(scope, receive, send_with_id)
        # Not in a `finally`: uvicorn runs each request in a task of its own, whose context dies with it, and
        # when the app raises, the id stays set for uvicorn's "Exception in ASGI application" log line.
        _current.reset(token)
