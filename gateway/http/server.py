"""The one uvicorn configuration: `python -m gateway` and the tests' running gateway both serve with it."""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp

from gateway.http.connection_guard import ConnectionLimits, guarded_protocol
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings


def server_config(app: ASGIApp, settings: Settings, metrics: GatewayMetrics, **logging: Any) -> uvicorn.Config:
    """uvicorn's settings for the gateway; `logging` takes uvicorn's log options (log_config, log_level)."""
    limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_header_count,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools (the fastest parser uvicorn has), guarded: gateway/http/connection_guard.py says against what.
        http=guarded_protocol(limits, metrics),
        backlog=settings.listen_backlog,
        access_log=False,  # per-request logging costs more than the gateway's whole budget; metrics count instead
        # SIGTERM: stop accepting, drain in-flight requests this long, cancel the rest, then the lifespan shutdown.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        proxy_headers=False,  # the gateway never uses the client address; skipping it saves per-request work
        **logging,
    )
