"""Per-replica gauges read from the replicas' state when Prometheus scrapes, not kept up to date per request.

Outstanding requests change twice per request on the hot path; a labelled Gauge would cost a lock and a
label lookup each time, while reading the counters at scrape time costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.upstream.served_models import ServedModel

_BREAKER_STATES = ("closed", "open", "half_open")


class ReplicaCollector(Collector):
    """Exports each replica's outstanding requests, vLLM queue length and circuit-breaker state."""

    def __init__(self, models: dict[str, ServedModel]) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "upstream"]
        outstanding = GaugeMetricFamily(
            "gateway_upstream_outstanding_requests",
            "This gateway's requests to the replica not finished yet (streams count until their last byte).",
            labels=labels,
        )
        waiting = GaugeMetricFamily(
            "gateway_upstream_queue_waiting",
            "vllm:num_requests_waiting at the replica's last /metrics scrape (absent while unknown).",
            labels=labels,
        )
        ejected = GaugeMetricFamily(
            "gateway_upstream_ejected",
            "1 while the replica's circuit breaker is open (no requests sent to it), else 0.",
            labels=labels,
        )
        breaker = GaugeMetricFamily(
            "gateway_upstream_breaker_state",
            "1 for the replica's current circuit-breaker state (closed, open, half_open).",
            labels=[*labels, "state"],
        )
        for model in self._models.values():
            for upstream in model.upstreams:
                values = [model.name, upstream.base_url]
                outstanding.add_metric(values, upstream.outstanding)
                if upstream.queue_waiting is not None:
                    waiting.add_metric(values, upstream.queue_waiting)
                ejected.add_metric(values, 0 if upstream.breaker.allows_traffic else 1)
                for state in _BREAKER_STATES:
                    breaker.add_metric([*values, state], 1 if upstream.breaker.state == state else 0)
        yield from (outstanding, waiting, ejected, breaker)
