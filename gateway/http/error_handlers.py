"""The one place where exceptions become HTTP responses in the OpenAI error shape.

`render_error` decides status and body for every exception; the FastAPI handlers and the hot path's
`ErrorBoundary` (which runs outside FastAPI's exception middleware) both use it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError, InvalidRequest, openai_error_body, openai_error_bytes
from gateway.http.disconnect import ClientDisconnected

log = logging.getLogger(__name__)

# nginx's "client closed request": never seen by the client, but it shows in the gateway's metrics.
CLIENT_CLOSED_REQUEST = 499


def render_error(method: str, path: str, exc: Exception) -> tuple[int, bytes]:
    """Status and OpenAI error body for any exception; unexpected ones are logged with their traceback."""
    if isinstance(exc, GatewayError):
        if exc.status_code >= 500:
            log.warning("%s %s -> %d: %s", method, path, exc.status_code, exc.message)
        return exc.status_code, openai_error_bytes(exc)
    if isinstance(exc, ClientDisconnected):
        return CLIENT_CLOSED_REQUEST, b""
    if isinstance(exc, RequestValidationError):
        # Like vLLM, a malformed request is a 400 naming the field, not FastAPI's 422.
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
        error = InvalidRequest(f"`{field or 'request'}`: {first['msg']}", param=field or None)
        return error.status_code, openai_error_bytes(error)
    if isinstance(exc, HTTPException):
        error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return exc.status_code, orjson.dumps(openai_error_body(f"{method} {path}: {exc.detail}", error_type))
    # The traceback goes to the log, never to the client.
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return 500, orjson.dumps(openai_error_body("internal error in the gateway; see its log", "internal_error"))


async def _handle(request: Request, exc: Exception) -> Response:
    status, body = render_error(request.method, request.url.path, exc)
    headers = exc.headers if isinstance(exc, HTTPException | GatewayError) else None
    return Response(body, status_code=status, media_type="application/json" if body else None, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for every exception type; call once from the app factory."""
    for exc_type in (GatewayError, RequestValidationError, HTTPException, ClientDisconnected, Exception):
        app.add_exception_handler(exc_type, _handle)


class ErrorBoundary:
    """Pure ASGI: renders an exception from `app` as an error response, for apps served outside FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                # Too late for an error response; the stream handlers end streams properly themselves.
                if not isinstance(exc, ClientDisconnected):
                    log.error("error after the response started on %s", scope["path"], exc_info=exc)
                return
            status, body = render_error(scope["method"], scope["path"], exc)
            await _send(send, status, body, exc.headers if isinstance(exc, GatewayError) else None)


async def send_error_response(send: Send, error: GatewayError) -> None:
    """Send `error` as a whole response in the OpenAI shape, with the headers it needs; for pure-ASGI code."""
    await _send(send, error.status_code, openai_error_bytes(error), error.headers)


def raw_error_response(error: GatewayError) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for the server's protocol layer (no ASGI there:
    gateway/http/connection_guard.py answers before or instead of a request reaching the app)."""
    body = openai_error_bytes(error)
    reason = HTTPStatus(error.status_code).phrase.encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return head % (error.status_code, reason, len(body)) + body


async def _send(send: Send, status: int, body: bytes, extra_headers: dict[str, str] | None) -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    if extra_headers:
        headers += [(name.lower().encode(), value.encode("latin-1")) for name, value in extra_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
