"""The one place where exceptions become HTTP responses in the OpenAI error shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.disconnect import ClientDisconnected
from gateway.errors import GatewayError, InvalidRequest, openai_error_body, openai_error_bytes

log = logging.getLogger(__name__)

# nginx's "client closed request": never seen by the client, but it shows in the gateway's metrics.
CLIENT_CLOSED_REQUEST = 499


def _json(status_code: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status_code >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.message)
    return _json(exc.status_code, openai_error_bytes(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    # Like vLLM, a malformed request is a 400 naming the field, not FastAPI's 422.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
    error = InvalidRequest(f"`{field or 'request'}`: {first['msg']}", param=field or None)
    return _json(error.status_code, openai_error_bytes(error))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path}: {exc.detail}"
    body = openai_error_body(message, error_type)
    return _json(exc.status_code, orjson.dumps(body), headers=exc.headers)


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = openai_error_body("internal error in the gateway; see its log", "internal_error")
    return _json(500, orjson.dumps(body))


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler; call once from the app factory."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnected, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected)
