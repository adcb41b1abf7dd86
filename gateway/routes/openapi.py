"""The OpenAPI document, with the chat route added by hand (it is a bare ASGI route, see routes/chat.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.chat.protocol import ChatCompletionRequest
from gateway.http.request_deadline import DEADLINE_DOCUMENT_PATHS
from gateway.routes import chat
from gateway.routes.error_responses import ERROR_DESCRIPTIONS


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` include POST /v1/chat/completions."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["ChatCompletionRequest"] = ChatCompletionRequest.model_json_schema()
            schema["paths"][chat.PATH] = {"post": _chat_operation()}
            _validation_errors_are_400(schema)
            _document_deadline_header(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# Read by gateway/http/request_deadline.py, a middleware, so no route declares it.
_DEADLINE_HEADER = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "Seconds this request may take, at most GATEWAY_REQUEST_TIMEOUT_S (a larger value changes "
    "nothing). Past it: 504 `timeout`, or a stream ends with an error event and `data: [DONE]`.",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


def _document_deadline_header(schema: dict[str, Any]) -> None:
    for path in (chat.PATH, *DEADLINE_DOCUMENT_PATHS):
        operation = schema["paths"].get(path, {}).get("post")
        if operation is not None:
            operation.setdefault("parameters", []).append(_DEADLINE_HEADER)


def _validation_errors_are_400(schema: dict[str, Any]) -> None:
    """FastAPI documents its 422 on every route with parameters; the gateway answers 400 in the OpenAI shape."""
    bad_request = {
        "description": ERROR_DESCRIPTIONS[400],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for operations in schema["paths"].values():
        for operation in operations.values():
            if operation.get("responses", {}).pop("422", None) is not None:
                operation["responses"].setdefault("400", bad_request)
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)


def _chat_operation() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "a chat.completion object, or with `stream: true` an SSE stream of "
            "chat.completion.chunk events ending with `data: [DONE]`",
            "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
        }
    }
    responses.update(
        {str(status): {"description": text, "content": error} for status, text in ERROR_DESCRIPTIONS.items()}
    )
    return {
        "tags": ["OpenAI"],
        "summary": "Chat with a vision-language model (OpenAI-compatible, streaming or not)",
        "operationId": "create_chat_completion",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}},
        },
        "responses": responses,
    }
