"""The chat request as the OpenAPI page documents it.

Documented, not validated with this model on the hot path: the gateway forwards the client's bytes to vLLM
unchanged (gateway/chat/request.py says what it does check).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
