"""Reading an upstream's error body tolerantly, whatever shape its vLLM version (or proxy) uses.

Shapes seen in the wild:
- vLLM >= 0.10.1: `{"error": {"message", "type", "param", "code": <int status>}}`
- vLLM < 0.10.1:  `{"object": "error", "message", "type", "param", "code"}`
- vLLM `--api-key` rejection: `401 {"error": "Unauthorized"}`
- FastAPI defaults (unknown route): `{"detail": "Not Found"}`
- anything else a proxy in between may send (HTML, plain text, nothing)

Status, message, param and code pass through; `type` becomes OpenAI's word for the status, so a client sees
one vocabulary whether the gateway or vLLM refused the request, and vLLM's own `type` is kept as `upstream_type`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamStatusError

_MAX_QUOTED = 200


def parse_upstream_error(status: int, body: bytes) -> GatewayError:
    """Turn an upstream error response into the gateway error that goes back to the client."""
    if status in (401, 403):
        # The upstream refused the *gateway's* credentials; passing 401 on would tell the client its own key
        # is wrong. It is a gateway misconfiguration, so it is a bad gateway.
        return UpstreamProtocolError(
            f"the upstream refused the gateway's credentials (HTTP {status}); check the model's api_key_env"
        )
    message, error_type, param, code = _fields(body)
    if message is None:
        snippet = body[:_MAX_QUOTED].decode("utf-8", "replace").strip()
        message = f"upstream returned HTTP {status}" + (f": {snippet}" if snippet else "")
    return UpstreamStatusError(
        status,
        message,
        error_type=openai_error_type(status),
        param=param,
        code=code,
        upstream_type=error_type or _reason(status),
    )


# OpenAI's error types by status, the words the gateway's own errors use (gateway/errors.py).
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "timeout",
}


def openai_error_type(status: int) -> str:
    """OpenAI's `type` for an error status: a 4xx not listed is an invalid request, a 5xx an internal error."""
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "internal_error")


def _fields(body: bytes) -> tuple[str | None, str | None, str | None, str | int | None]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, None, None, None
    if not isinstance(data, dict):
        return None, None, None, None
    inner: Any = data.get("error")
    if isinstance(inner, dict):
        return _str(inner.get("message")), _str(inner.get("type")), _str(inner.get("param")), _code(inner)
    if isinstance(inner, str):
        return inner, None, None, None
    if data.get("object") == "error" or "message" in data:
        return _str(data.get("message")), _str(data.get("type")), _str(data.get("param")), _code(data)
    detail = data.get("detail")
    if detail is not None:
        return detail if isinstance(detail, str) else orjson.dumps(detail).decode(), None, None, None
    return None, None, None, None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _code(container: dict[str, Any]) -> str | int | None:
    code = container.get("code")
    return code if isinstance(code, str | int) and not isinstance(code, bool) else None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return "UpstreamError"
