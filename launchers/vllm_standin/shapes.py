"""Builders of the exact JSON bodies vLLM (v0.10.1 and later) sends.

Sources: vllm/entrypoints/openai/chat_completion/protocol.py and engine/protocol.py.

Key order follows vLLM's pydantic models, so byte-level comparisons with a real server line up.
"""

from __future__ import annotations

import os
import time
from http import HTTPStatus
from typing import Any

import orjson

from .config import ErrorShape, StandinConfig

SSE_DONE = b"data: [DONE]\n\n"

# vLLM names errors raised as exceptions by these types (create_error_response); statuses it
# raises as HTTP errors get the reason phrase instead (http_exception_handler).
_EXCEPTION_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    500: "InternalServerError",
    501: "NotImplementedError",
}


def random_hex() -> str:
    """32 hex digits, like vLLM's `random_uuid()`."""
    return os.urandom(16).hex()


def error_type_for(status: int) -> str:
    """The `type` vLLM puts in an error body for this status."""
    return _EXCEPTION_TYPES.get(status) or HTTPStatus(status).phrase


def error_body(
    message: str, err_type: str, status: int, param: str | None = None, shape: ErrorShape = "nested"
) -> dict[str, Any]:
    """An error response body: nested (vLLM >= 0.10.1) or flat (older), `code` = HTTP status."""
    if shape == "flat":
        return {"object": "error", "message": message, "type": err_type, "param": param, "code": status}
    return {"error": {"message": message, "type": err_type, "param": param, "code": status}}


def stream_error_body(message: str, err_type: str, status: int, shape: ErrorShape) -> dict[str, Any]:
    """The payload of vLLM's mid-stream error event: always under an `error` key.

    Old servers wrapped the flat body (`{"error": {"object": "error", ...}}`); new ones send the
    nested body as is, which already has that form.
    """
    if shape == "flat":
        return {"error": error_body(message, err_type, status, None, "flat")}
    return error_body(message, err_type, status, None, "nested")


def unauthorized_body() -> dict[str, Any]:
    """vLLM's AuthenticationMiddleware body for a missing or wrong API key (401)."""
    return {"error": "Unauthorized"}


def route_error_body(status: int) -> dict[str, Any]:
    """FastAPI's body for an unknown route (404) or method (405), which vLLM leaves as is."""
    return {"detail": HTTPStatus(status).phrase}


def usage(prompt_tokens: int, completion_tokens: int, *, details: bool) -> dict[str, Any]:
    """A usage object; stream chunks drop `prompt_tokens_details` (vLLM excludes unset fields)."""
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if details:
        body["prompt_tokens_details"] = None
    return body


def stop_reason(finish_reason: str | None) -> str | None:
    """vLLM's `stop_reason` beside a finish reason: "repetition_detected" when repetition_detection ended it.

    (A matched stop string or token id would go here too; the stand-in has none.)
    """
    return "repetition_detected" if finish_reason == "repetition" else None


def chat_completion(
    completion_id: str,
    created: int,
    model: str,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A non-streaming `chat.completion` body with every field vLLM sends."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [],
        "reasoning": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason(finish_reason),
        "token_ids": None,
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage(prompt_tokens, completion_tokens, details=True),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def chat_chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None,
    *,
    with_usage: bool,
    usage_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `with_usage` adds the `usage` key (null unless given)."""
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason(finish_reason),
            }
        ],
    }
    if with_usage:
        chunk["usage"] = usage_body
    return chunk


def usage_chunk(completion_id: str, created: int, model: str, usage_body: dict[str, Any]) -> dict[str, Any]:
    """The extra last chunk of an `include_usage` stream: no choices, just usage."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_body,
    }


def model_list(config: StandinConfig) -> dict[str, Any]:
    """`GET /v1/models`: one card per served name, built fresh per call like vLLM does."""
    created = int(time.time())
    cards = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": config.root,
            "parent": None,
            "max_model_len": config.max_model_len,
            "permission": [_permission(created)],
        }
        for name in config.models
    ]
    return {"object": "list", "data": cards}


def _permission(created: int) -> dict[str, Any]:
    return {
        "id": f"modelperm-{random_hex()}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event exactly as vLLM frames it: `data: <json>` and a blank line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
