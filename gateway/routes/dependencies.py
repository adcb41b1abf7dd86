"""FastAPI dependencies: the routes' typed access to the app's parts, overridable in tests.

`GatewayState` lives here, at the top of the import graph, because only the routes (and the app factory that
builds it) see the whole gateway; the pipeline, the job runner and the chat relay take just the parts they use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.documents.pipeline import DocumentPipeline
from gateway.jobs.runner import JobRunner
from gateway.jobs.store import Store
from gateway.models.registry import ModelConfig
from gateway.observability.metrics import GatewayMetrics
from gateway.security.remote_images import RemoteImageFetcher
from gateway.settings import Settings
from gateway.upstream.client import UpstreamClient
from gateway.upstream.health_probe import HealthProber
from gateway.upstream.replica_load import LoadScraper
from gateway.upstream.served_models import ServedModel


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
    store: Store  # jobs, their uploads and results, the result cache (SQLite)
    documents: DocumentPipeline  # reads documents for /v1/ocr, /v1/layout and jobs
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
