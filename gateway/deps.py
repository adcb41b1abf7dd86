"""FastAPI dependencies: typed access to the app's parts, overridable in tests."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from gateway.health import HealthProber
from gateway.metrics import GatewayMetrics
from gateway.page_slots import PageSlots
from gateway.registry import ModelConfig
from gateway.remote_images import RemoteImageFetcher
from gateway.replica_load import LoadScraper
from gateway.served_models import ServedModel
from gateway.settings import Settings
from gateway.store import Store
from gateway.upstream import UpstreamClient

if TYPE_CHECKING:  # jobs.py runs documents through the pipeline, which imports this module
    from gateway.jobs import JobRunner


@dataclass
class GatewayState:
    """Everything the routes use, built once by the app factory."""

    settings: Settings
    registry: dict[str, ModelConfig]  # every model config, served or not (the catalogue)
    models: dict[str, ServedModel]
    upstream: UpstreamClient
    remote_images: RemoteImageFetcher  # allow-listed image URLs, fetched by the gateway itself
    metrics: GatewayMetrics
    prober: HealthProber
    load_scraper: LoadScraper  # each replica's vLLM queue length, for load-aware routing
    started_at: int
    render_pool: Executor  # renders PDF pages, sized to the CPU
    page_slots: PageSlots  # pages of one model in flight at once
    store: Store  # jobs, their uploads and results, the result cache (SQLite)
    jobs: JobRunner  # runs jobs in the background, started and stopped by the lifespan


# Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which costs more than
# the gateway's whole latency budget.
async def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


async def get_settings(state: Annotated[GatewayState, Depends(get_state)]) -> Settings:
    return state.settings


StateDep = Annotated[GatewayState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
