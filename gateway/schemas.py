"""Public request and response models, for the OpenAPI page and the routes that build JSON.

The chat body is documented here but not validated with these models on the hot path: the gateway
forwards the client's bytes to vLLM unchanged (see chat_request.py for what it does check).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.registry import Task


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request; every other OpenAI or vLLM field passes through to vLLM."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="a model id from GET /v1/models")
    messages: list[dict[str, Any]] = Field(
        min_length=1,
        description="OpenAI messages; images as content parts "
        '{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}',
    )
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """The OpenAI error envelope every error uses."""

    error: ErrorDetail


class ModelCard(BaseModel):
    """One entry of GET /v1/models: OpenAI's fields plus what this gateway knows of the model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    tasks: list[Task]
    status: Literal["ready", "unavailable"]
    max_model_len: int | None = Field(None, description="present once the upstream has reported it")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    catalog: list[dict[str, Any]] | None = Field(None, description="with verbose=true: every configured model")


class UpstreamReadiness(BaseModel):
    upstream: int = Field(description="index of the upstream in the model's list")
    healthy: bool | None = Field(description="null until the first probe")
    error: str | None = None


class ModelReadiness(BaseModel):
    status: Literal["ready", "unavailable"]
    upstreams: list[UpstreamReadiness]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    models: dict[str, ModelReadiness]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


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
