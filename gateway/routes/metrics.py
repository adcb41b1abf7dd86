"""GET /metrics: the Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from gateway.routes.dependencies import StateDep

router = APIRouter(tags=["Operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: StateDep) -> Response:
    """Requests, latency, stream first-byte time, in-flight requests, upstream errors, retries and health."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
