"""GET /v1/models answers: OpenAI's model list, with what this gateway knows of each model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from gateway.models.registry import Task


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
