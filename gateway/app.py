"""The app factory: builds the gateway from settings, wires routes, middleware and error handlers."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cached_property

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import __version__
from gateway.documents.page_slots import PageSlots
from gateway.documents.pipeline import DocumentPipeline
from gateway.documents.pixel_budget import PixelBudget, map_large_blocks
from gateway.documents.sources.pages import make_render_pool
from gateway.http.bare_route import BareASGIRoute
from gateway.http.error_handlers import ErrorBoundary, install_error_handlers
from gateway.http.request_body import BodyLimit
from gateway.http.request_deadline import DEADLINE_DOCUMENT_PATHS, RequestDeadline
from gateway.jobs.runner import JobRunner
from gateway.jobs.store_schema import open_store
from gateway.models.registry import load_registry
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.metrics_middleware import MetricsMiddleware
from gateway.observability.request_id import RequestIdMiddleware
from gateway.routes import chat, documents, health, jobs, metrics, models
from gateway.routes.dependencies import GatewayState
from gateway.routes.docs_pages import install_docs_pages
from gateway.routes.openapi import install_openapi
from gateway.security.auth import AuthMiddleware, load_key_ring, make_limiter
from gateway.security.cors import cors_middleware
from gateway.security.remote_images import RemoteImageFetcher
from gateway.settings import Settings
from gateway.upstream.client import UpstreamClient
from gateway.upstream.health_probe import HealthProber
from gateway.upstream.replica_load import LoadScraper
from gateway.upstream.replica_metrics import ReplicaCollector
from gateway.upstream.served_models import build_served_models

log = logging.getLogger(__name__)


class GatewayApp(FastAPI):
    """FastAPI, except that the hot path (POST /v1/chat/completions) is dispatched before FastAPI's own
    middleware and routing, which cost a large share of each proxied request (docs/architecture.md)."""

    hot_path: ASGIApp | None = None
    cors: Callable[[ASGIApp], ASGIApp] | None = None  # None: no CORS, nothing on the path (gateway/security/cors.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    @cached_property
    def _entry(self) -> ASGIApp:
        # Request ids wrap the whole dispatch once, outermost: the hot path and FastAPI's stack both get them.
        # CORS too, inside the ids (a preflight answer gets one): every route and the key check's 401/429 carry
        # its headers, and preflights are answered before the key check.
        dispatch: ASGIApp = self._dispatch if self.cors is None else self.cors(self._dispatch)
        return RequestIdMiddleware(dispatch)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot_path = self.hot_path
        if (
            hot_path is not None
            and scope["type"] == "http"
            and scope["path"] == chat.PATH
            and scope["method"] == "POST"
        ):
            await hot_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> GatewayApp:
    """Build the gateway. Raises ConfigError (naming the file and field) before anything listens."""
    settings = settings or Settings()
    map_large_blocks()  # decoded pages' memory goes back to the system when freed (documents/pixel_budget.py)
    registry = load_registry(settings.model_configs_dir, settings.prompts_dir)
    served = build_served_models(registry, settings)
    gateway_metrics = GatewayMetrics()
    gateway_metrics.registry.register(ReplicaCollector(served))
    store = open_store(settings.store_path, cache_max_bytes=settings.cache_max_bytes)  # ConfigError if unusable
    upstream = UpstreamClient(settings, gateway_metrics)
    render_pool = make_render_pool(task_timeout_s=settings.render_timeout_s, max_bytes=settings.render_max_bytes)
    page_slots = PageSlots(settings.page_concurrency)
    document_pipeline = DocumentPipeline(
        settings=settings,
        models=served,
        upstream=upstream,
        metrics=gateway_metrics,
        render_pool=render_pool,
        page_slots=page_slots,
        cache_store=store,
        pixel_budget=PixelBudget(settings.decode_pixel_budget, settings.decode_wait_s),
    )
    state = GatewayState(
        settings=settings,
        registry=registry,
        models=served,
        upstream=upstream,
        remote_images=RemoteImageFetcher(settings, gateway_metrics),
        metrics=gateway_metrics,
        prober=HealthProber(
            served,
            gateway_metrics,
            interval_s=settings.health_interval_s,
            timeout_s=settings.health_timeout_s,
        ),
        load_scraper=LoadScraper(served, interval_s=settings.load_interval_s, timeout_s=settings.health_timeout_s),
        started_at=int(time.time()),
        store=store,
        documents=document_pipeline,
        jobs=JobRunner(store, document_pipeline),
    )
    keys = load_key_ring(settings)  # ConfigError naming the keys file and field
    limiter = make_limiter(settings) if keys is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keys is None:
            log.warning("no API keys configured (GATEWAY_API_KEYS, GATEWAY_KEYS_FILE): the gateway is open to anyone")
        await state.upstream.start()
        await state.remote_images.start()
        state.prober.start()
        state.load_scraper.start()
        await state.jobs.start()  # expires old jobs, resumes those a previous run left unfinished
        # Everything built so far (FastAPI, pydantic, the registry) lives for the whole process: moving it out
        # of the collector's reach keeps full collections short, which showed as tens of ms at p99 under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await state.jobs.close()  # unfinished jobs stay in the store, resumed at the next start
            await state.prober.close()
            await state.load_scraper.close()
            await state.upstream.close()
            await state.remote_images.close()
            if limiter is not None:
                await limiter.close()
            state.documents.render_pool.shutdown()  # kills renders still running: the grace period is over
            state.store.close()

    app = GatewayApp(
        title="VLM gateway",
        version=__version__,
        description="OpenAI-compatible gateway in front of per-model vLLM servers: image chat, OCR and layout.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc without a CDN: routes/docs_pages.py
        redoc_url=None,
    )
    app.state.gateway = state
    chat_endpoint = chat.ChatCompletionsEndpoint(state)
    # Registered for routing (a GET gets 405) and the route label; POSTs take the hot path below.
    chat_route = BareASGIRoute(chat.PATH, chat_endpoint, methods=["POST"])
    app.router.routes.append(chat_route)
    for module in (models, documents, jobs, health, metrics):
        app.include_router(module.router)
    install_openapi(app)
    install_docs_pages(app)
    install_error_handlers(app)
    chat_app: ASGIApp = chat_endpoint
    # The body limit of FastAPI's routes (the chat hot path checks its own), innermost: after the key check.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if keys is not None and limiter is not None:  # no keys: nothing on the request path at all
        guard_metrics = settings.metrics_require_key is not False  # guarded unless explicitly opened
        app.add_middleware(
            AuthMiddleware, keys=keys, limiter=limiter, metrics=gateway_metrics, guard_metrics=guard_metrics
        )
        # Renders its 401/429 here: errors raised in middleware would reach Starlette's ServerErrorMiddleware,
        # which answers but then re-raises, and the server would log a traceback for every refused request.
        app.add_middleware(ErrorBoundary)
        chat_app = AuthMiddleware(chat_endpoint, keys, limiter, gateway_metrics, guard_metrics=guard_metrics)
    # The request deadline on chat and documents, and an OpenAI-shaped end for any request the server cuts
    # short at shutdown; inside the metrics, which count the 504/503 it answers (gateway/http/request_deadline.py).
    limit_s = settings.request_timeout_s
    app.add_middleware(RequestDeadline, limit_s=limit_s, paths=DEADLINE_DOCUMENT_PATHS, metrics=gateway_metrics)
    app.add_middleware(MetricsMiddleware, metrics=gateway_metrics)
    chat_app = RequestDeadline(ErrorBoundary(chat_app), limit_s=limit_s, paths=(chat.PATH,), metrics=gateway_metrics)
    app.hot_path = MetricsMiddleware(chat_app, gateway_metrics, route=chat_route)
    app.cors = cors_middleware(settings)
    return app
