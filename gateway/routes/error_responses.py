"""The OpenAI error envelope as the OpenAPI page documents it, and the error answers each route lists."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """The OpenAI error envelope every error uses."""

    error: ErrorDetail


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "invalid request (the message names the field)",
    404: "unknown model",
    413: "request body too large",
    502: "the upstream answered something that is not vLLM's API",
    503: "no upstream of the model is reachable",
    504: "the upstream timed out",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description} for status, description in ERROR_DESCRIPTIONS.items()
}
