"""The gateway's errors and their one mapping to the OpenAI error shape.

    GatewayError                  500 internal_error
    ├── InvalidRequest            400 invalid_request_error   (names the offending field in `param`)
    │   ├── BodyTooLarge          413 invalid_request_error
    │   └── (beside their inputs: ImageRejected/ImageTooLarge in image_decode.py, DocumentRejected/TooManyPages
    │       in page_source.py, BatchTooLarge 413 and UnsupportedMediaType 415 in document_request.py,
    │       RemoteImageRefused 400 in remote_images.py)
    ├── Unauthorized              401 authentication_error    code invalid_api_key (gateway/security/auth.py)
    ├── RateLimited               429 rate_limit_error        with Retry-After and x-ratelimit-* headers
    ├── ModelNotFound             404 invalid_request_error   code model_not_found
    ├── JobNotFound               404 not_found_error         code job_not_found, param id
    ├── JobConflict               409 invalid_request_error   (a job's result before it finished, or
    │                                                          cancelling a finished job)
    ├── UpstreamStatusError       the upstream's own status, message, type and param (an upstream 4xx or a
    │                             5xx left after retries)
    ├── UpstreamUnavailable       503 service_unavailable     (refused, reset, no healthy replica)
    ├── UpstreamTimeout           504 timeout
    ├── UpstreamProtocolError     502 bad_gateway             (the upstream answered something that is not
    │   │                                                      vLLM's API, e.g. garbage instead of JSON)
    │   └── UpstreamAnswerTooLarge 502 bad_gateway            code upstream_answer_too_large (an answer or SSE
    │                                                          event over its cap; the message names the setting)
    ├── StoreUnavailable          503 service_unavailable     code store_unavailable (the jobs' SQLite store
    │   │                                                      failed a read or write)
    │   └── StorageFull           507 insufficient_storage    code storage_full (its disk is full)
    ├── ServerBusy                503 service_unavailable     code server_busy, with Retry-After (a shared budget,
    │                                                          e.g. decoded image pixels, stayed full too long)
    ├── RequestTimeout            504 timeout                 code request_timeout (the request's own deadline,
    │                                                          gateway/http/request_deadline.py)
    ├── HeadersTooLarge           431 invalid_request_error   code headers_too_large (size or count of the
    │                                                          request's headers, gateway/http/connection_guard.py)
    ├── ClientTooSlow             408 invalid_request_error   code client_too_slow (headers or body not sent in time)
    ├── TooManyConnections        503 service_unavailable     code too_many_connections (GATEWAY_MAX_CONNECTIONS)
    └── ShuttingDown              503 service_unavailable     code shutting_down (still running when the
                                                               shutdown grace period ended)

Every error leaves the gateway as `{"error": {"message", "type", "param", "code"}}`; tracebacks stay in
the log. Code raises these and never returns an error inside a union value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson


class GatewayError(Exception):
    """Base of every error the gateway turns into an OpenAI error response."""

    status_code = 500
    error_type = "internal_error"
    code: str | int | None = None

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers  # response headers the error needs (Retry-After, x-ratelimit-*)

    def body(self) -> dict[str, Any]:
        """The OpenAI error envelope for this error."""
        return openai_error_body(self.message, self.error_type, self.param, self.code)


class InvalidRequest(GatewayError):
    """The client sent something the gateway cannot accept; `param` names the field."""

    status_code = 400
    error_type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    """The request body is larger than `GATEWAY_MAX_BODY_BYTES`."""

    status_code = 413


class Unauthorized(GatewayError):
    """No API key, or one the gateway does not know. The message never repeats what the client sent."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class RateLimited(GatewayError):
    """The key is over its requests-per-minute or concurrency limit; `headers` say when to come back."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, code: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.code = code


class ModelNotFound(GatewayError):
    """The `model` names no model this gateway serves."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str, served: Iterable[str]) -> None:
        # OpenAI's sentence first (clients match on it), then what would have worked.
        names = ", ".join(sorted(served)) or "none"
        message = f"The model `{shown(model)}` does not exist. Served models: {names} (GET /v1/models)."
        super().__init__(message, param="model")


class JobNotFound(GatewayError):
    """No job has this id (never submitted, or deleted GATEWAY_JOB_RESULT_TTL_S after it finished)."""

    status_code = 404
    error_type = "not_found_error"
    code = "job_not_found"

    def __init__(self, job_id: str, *, param: str = "id") -> None:
        super().__init__(f"No job with id `{job_id}` (finished jobs are deleted after a while).", param=param)


class JobConflict(GatewayError):
    """The job is not in a state that allows this: its result before it finished, or cancelling a finished job."""

    status_code = 409
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, param="id")
        self.code = code


class UpstreamStatusError(GatewayError):
    """The upstream answered with an error status; its status, message and param pass through.

    `type` is OpenAI's word for the status, as on the gateway's own errors (vLLM says `BadRequestError`,
    `NotFoundError` or `Bad Request`); vLLM's own word rides along as `upstream_type`.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str,
        param: str | None,
        code: str | int | None,
        upstream_type: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status_code = status_code
        self.error_type = error_type
        self.code = code
        self.upstream_type = upstream_type

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.upstream_type is not None:
            body["error"]["upstream_type"] = self.upstream_type
        return body


class UpstreamUnavailable(GatewayError):
    """No upstream of the model could be reached."""

    status_code = 503
    error_type = "service_unavailable"


class UpstreamTimeout(GatewayError):
    """The upstream did not answer within the configured timeout."""

    status_code = 504
    error_type = "timeout"


class UpstreamProtocolError(GatewayError):
    """The upstream answered, but not in vLLM's API (e.g. a non-JSON body)."""

    status_code = 502
    error_type = "bad_gateway"


class UpstreamAnswerTooLarge(UpstreamProtocolError):
    """The upstream's answer (or one SSE event of it) passed the gateway's cap; the message names the setting."""

    code = "upstream_answer_too_large"


class ServerBusy(GatewayError):
    """A budget shared by all requests (decoded image pixels) stayed full for longer than the request may wait."""

    status_code = 503
    error_type = "service_unavailable"
    code = "server_busy"


class StoreUnavailable(GatewayError):
    """The durable store (SQLite) could not read or write; nothing was half-written (one transaction each)."""

    status_code = 503
    error_type = "service_unavailable"
    code = "store_unavailable"


class StorageFull(StoreUnavailable):
    """The store's disk (or its file system's quota) is full: WebDAV's 507, which says exactly that."""

    status_code = 507
    error_type = "insufficient_storage"
    code = "storage_full"


class RequestTimeout(GatewayError):
    """The request outlived its deadline (GATEWAY_REQUEST_TIMEOUT_S, or a shorter X-Request-Timeout)."""

    status_code = 504
    error_type = "timeout"
    code = "request_timeout"


class HeadersTooLarge(GatewayError):
    """The request's headers are larger, or more, than the gateway reads (GATEWAY_MAX_HEADER_BYTES/_COUNT)."""

    status_code = 431
    error_type = "invalid_request_error"
    code = "headers_too_large"


class ClientTooSlow(GatewayError):
    """The client did not send its headers, or went silent in its body, within the time the gateway allows."""

    status_code = 408
    error_type = "invalid_request_error"
    code = "client_too_slow"


class TooManyConnections(GatewayError):
    """The server holds GATEWAY_MAX_CONNECTIONS connections already; this one is closed at once."""

    status_code = 503
    error_type = "service_unavailable"
    code = "too_many_connections"


class ShuttingDown(GatewayError):
    """The server cancelled the request: it was still running when the shutdown grace period ended."""

    status_code = 503
    error_type = "service_unavailable"
    code = "shutting_down"


# Longest piece of client input an error message repeats: a 1 MB `model` must not come back whole.
SHOWN_CHARS = 80


def shown(value: str, limit: int = SHOWN_CHARS) -> str:
    """`value` for an error message: cut to `limit` characters, saying how long it really was."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value):,} characters)"


def openai_error_body(
    message: str, error_type: str, param: str | None = None, code: str | int | None = None
) -> dict[str, Any]:
    """Build `{"error": {...}}`, the shape OpenAI clients parse."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_error_bytes(error: GatewayError) -> bytes:
    """The error envelope serialised, for places that write raw bytes (SSE events, pure ASGI)."""
    return orjson.dumps(error.body())
