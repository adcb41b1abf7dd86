"""The control plane: probe every upstream's `/health` in the background and learn its `max_model_len`.

vLLM answers `/health` only once its engine is up (before that the port refuses connections), 200 when
healthy and 503 when the engine died. `/v1/models` reports the effective `max_model_len`. Results feed
`GET /ready`, `GET /v1/models` and the `gateway_upstream_healthy` gauge; the data plane prefers healthy
replicas but never blocks on this loop. A probe answering 200 is also how a replica ejected by its circuit
breaker (gateway/upstream/circuit_breaker.py) gets traffic again. A probe that times out while the replica is
serving this gateway's requests leaves it healthy: a slow /health under load means busy, and a replica that is
really stuck fails those requests, which eject it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from gateway.observability.metrics import GatewayMetrics
from gateway.upstream.served_models import ServedModel, Upstream

log = logging.getLogger(__name__)


class HealthProber:
    """Probes all upstreams every `interval_s` seconds with its own small httpx client."""

    def __init__(
        self,
        models: dict[str, ServedModel],
        metrics: GatewayMetrics,
        *,
        interval_s: float,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._models = models
        self._metrics = metrics
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), transport=transport)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Begin probing in the background; the first round starts at once."""
        self._task = asyncio.create_task(self._loop(), name="upstream-health")

    async def close(self) -> None:
        """Stop after the round under way, then close the client.

        A round is let finish rather than cancelled: a probe cancelled inside httpx's connection handling could
        leave its socket open past the client's close (seen as an unclosed transport when the loop closed). A
        round takes at most two requests' timeouts; past that it is cancelled after all.
        """
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=2 * self._timeout_s + 1)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self._client.aclose()

    async def probe_all(self) -> None:
        """Probe every upstream of every model once, concurrently."""
        await asyncio.gather(
            *(self.probe(model, upstream) for model in self._models.values() for upstream in model.upstreams)
        )

    async def probe(self, model: ServedModel, upstream: Upstream) -> None:
        """Update one upstream's health (and, once, its max_model_len)."""
        was_healthy = upstream.healthy
        started = time.monotonic()
        try:
            response = await self._client.get(upstream.root_url + "/health")
            upstream.healthy = response.status_code == 200
            if upstream.healthy and upstream.breaker.probe_succeeded(started):
                self._metrics.upstream_readmissions.labels(model.name, upstream.base_url).inc()
                log.info("upstream %s of %s answers /health again: readmitted on trial", upstream.base_url, model.name)
            upstream.last_error = None if upstream.healthy else f"/health answered HTTP {response.status_code}"
            if upstream.healthy and upstream.max_model_len is None:
                upstream.max_model_len = await self._max_model_len(model, upstream)
        except httpx.TimeoutException:
            if was_healthy and upstream.outstanding > 0:
                # Busy, not down: vLLM answers /health on the event loop that also streams every answer, and
                # under load it answers late (seconds on a busy CPU, tests/real_vllm/test_health_under_load.py).
                # A replica working on this gateway's requests is judged by them (failures trip its breaker).
                upstream.last_error = f"/health slow while {upstream.outstanding} request(s) are in flight"
            else:
                upstream.healthy, upstream.last_error = False, "/health timed out"
        except httpx.HTTPError as exc:
            upstream.healthy, upstream.last_error = False, f"/health unreachable ({type(exc).__name__})"
        self._metrics.upstream_healthy.labels(model.name, upstream.base_url).set(1 if upstream.healthy else 0)
        if upstream.healthy != was_healthy:
            level = logging.INFO if upstream.healthy else logging.WARNING
            log.log(
                level,
                "upstream %s of %s is %s",
                upstream.base_url,
                model.name,
                "healthy" if upstream.healthy else f"unhealthy: {upstream.last_error}",
            )

    async def _max_model_len(self, model: ServedModel, upstream: Upstream) -> int | None:
        try:
            response = await self._client.get(upstream.base_url + "/models", headers=upstream.auth_headers())
            cards = response.json().get("data", []) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        for card in cards:
            if isinstance(card, dict) and card.get("id") == model.name:
                length = card.get("max_model_len")
                return length if isinstance(length, int) else None
        return None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.probe_all()
            except Exception:  # a bug here must not stop probing for good
                log.exception("health probe round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
