"""Read each replica's queue length from its vLLM `/metrics` every few seconds, for load-aware routing.

`vllm:num_requests_waiting` counts requests vLLM accepted but could not fit into its running batch: the
best back-pressure signal it exports (production-stack's router and llm-d read it too). It includes
requests from every client of that server, such as other gateway replicas, which the gateway's own count of
outstanding requests cannot see. A failed scrape leaves the value unknown (no queue assumed) rather than
marking the replica down: /health is the health signal, this is only a hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from gateway.upstream.served_models import ServedModel, Upstream

log = logging.getLogger(__name__)

_WAITING = "vllm:num_requests_waiting"


def parse_waiting(exposition: str) -> float | None:
    """The sum of `vllm:num_requests_waiting` over its series (one per engine), or None if absent.

    One vLLM server serves one model, so every series belongs to it; a hand-rolled scan instead of
    prometheus_client's parser because vLLM's exposition runs to thousands of histogram lines and only
    this one matters.
    """
    total: float | None = None
    for line in exposition.splitlines():
        if not line.startswith(_WAITING):
            continue
        rest = line[len(_WAITING) :]
        if rest[:1] == "{":
            rest = rest[rest.rfind("}") + 1 :]
        elif rest[:1] not in (" ", "\t"):
            continue  # another metric whose name starts the same way
        fields = rest.split()
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            continue
        total = value if total is None else total + value
    return total


class LoadScraper:
    """Scrapes every replica's /metrics each `interval_s` seconds with its own small httpx client."""

    def __init__(
        self,
        models: dict[str, ServedModel],
        *,
        interval_s: float,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Only models with several replicas have a choice to make; one replica needs no scraping.
        self._upstreams = [u for model in models.values() if len(model.upstreams) > 1 for u in model.upstreams]
        self._interval_s = interval_s
        # Built only when needed: an httpx client loads the CA bundle (a few MB) even for plain http.
        self._client: httpx.AsyncClient | None = None
        self._timeout = httpx.Timeout(timeout_s)
        self._transport = transport
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._upstreams:
            self._task = asyncio.create_task(self._loop(), name="upstream-load")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def scrape_all(self) -> None:
        await asyncio.gather(*(self.scrape(upstream) for upstream in self._upstreams))

    async def scrape(self, upstream: Upstream) -> None:
        """Update one replica's queue length; unknown if its /metrics cannot be read."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        try:
            response = await self._client.get(upstream.root_url + "/metrics")
            upstream.queue_waiting = parse_waiting(response.text) if response.status_code == 200 else None
        except httpx.HTTPError:
            upstream.queue_waiting = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.scrape_all()
            except Exception:  # a bug here must not stop scraping for good
                log.exception("upstream load scrape failed")
            await asyncio.sleep(self._interval_s)
