"""Liveness (/health: the process answers) and readiness (/ready: every model has a healthy upstream)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.routes.dependencies import StateDep

router = APIRouter(tags=["Operations"])


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


# HEAD too: load balancers and uptime checkers (`curl -I`, many monitors) send it, and a 405 reads as down. Out
# of the OpenAPI document: one operation per path is enough there, and two would share an operationId.
@router.head("/health", include_in_schema=False)
@router.get("/health", response_model=Liveness)
async def health() -> Liveness:
    """The gateway process is up. Touches no upstream, so it is safe for a liveness probe."""
    return Liveness()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(state: StateDep) -> JSONResponse:
    """200 when every served model has at least one healthy upstream, else 503; per-model detail."""
    models = {
        name: ModelReadiness(
            status="ready" if model.ready else "unavailable",
            upstreams=[
                UpstreamReadiness(upstream=i, healthy=upstream.healthy, error=upstream.last_error)
                for i, upstream in enumerate(model.upstreams)
            ],
        )
        for name, model in state.models.items()
    }
    all_ready = all(model.ready for model in state.models.values())
    body = Readiness(status="ready" if all_ready else "not_ready", models=models)
    return JSONResponse(body.model_dump(), status_code=200 if all_ready else 503)
