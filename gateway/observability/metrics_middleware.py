"""Pure ASGI middleware (no BaseHTTPMiddleware: it would get in the way of streams and disconnects)."""

from __future__ import annotations

import time

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.metrics import NO_MODEL, GatewayMetrics


class MetricsMiddleware:
    """Counts every HTTP request by model, route template and status, and times it to its last byte."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, route: BaseRoute | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.route = route  # known in advance when this wraps one route's app; else read after routing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering, that is what the client got
        # Routes write the served model's name here (request.state.model); a client's arbitrary
        # `model` string never becomes a label.
        state = scope.setdefault("state", {})

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.in_flight.dec()
            route = self.route or scope.get("route")
            template = getattr(route, "path", "unmatched")
            model = state.get("model", NO_MODEL)
            metrics.requests.labels(model, template, str(status)).inc()
            metrics.latency.labels(model, template).observe(time.perf_counter() - started)
