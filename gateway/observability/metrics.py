"""The gateway's Prometheus series, kept in a registry of their own per app (tests build several apps).

Label values are bounded: `model` is a served model's name or "none", `route` a route template, never a
raw path or a client-chosen string.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

NO_MODEL = "none"
# From sub-millisecond gateway answers to multi-minute OCR generations.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """Every series the gateway exports."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # `*_created` series double the exposition and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by model, route template and HTTP status.",
            ["model", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds",
            "Time from the request's arrival to the last byte of its answer (whole stream for SSE).",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stream_first_byte = Histogram(
            "gateway_stream_first_byte_seconds",
            "Time from a streaming request's arrival to its first relayed SSE event.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being answered now.",
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed upstream exchanges by kind: connect, timeout, status_4xx, status_5xx, invalid_response, "
            "stream_broken, stream_error_event, pool_full (the gateway's own pool of connections to it was full).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries",
            "Upstream requests sent again after a retryable failure, by the failure's kind.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.upstream_healthy = Gauge(
            "gateway_upstream_healthy",
            "1 when the upstream's last /health probe answered 200, else 0.",
            ["model", "upstream"],
            registry=self.registry,
        )
        self.upstream_ejections = Counter(
            "gateway_upstream_ejections",
            "Replicas taken out of rotation by their circuit breaker (GATEWAY_EJECT_AFTER_FAILURES in a row).",
            ["model", "upstream"],
            registry=self.registry,
        )
        self.upstream_readmissions = Counter(
            "gateway_upstream_readmissions",
            "Ejected replicas given traffic again after a /health probe answered 200.",
            ["model", "upstream"],
            registry=self.registry,
        )
        self.upstream_failovers = Counter(
            "gateway_upstream_failovers",
            "Requests moved to another replica after a failure, before any byte reached the client.",
            ["model"],
            registry=self.registry,
        )

        self.pages = Counter(
            "gateway_pages",
            "Document pages answered, by model, task (ocr, layout) and status (ok, repaired, degraded).",
            ["model", "task", "status"],
            registry=self.registry,
        )
        self.page_attempts = Histogram(
            "gateway_page_attempts",
            "Model calls a document page took (retries with a rising temperature after invalid output).",
            ["model", "task"],
            buckets=(1, 2, 3, 4, 6),
            registry=self.registry,
        )
        self.layout_repairs = Counter(
            "gateway_layout_repairs",
            "Repairs made to layout output, by kind (truncated_tail, missing_comma, duplicate, repetition_loop...).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.layout_dropped = Counter(
            "gateway_layout_dropped_elements",
            "Layout elements dropped as invalid, by reason.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.repetition_stops = Counter(
            "gateway_repetition_stops",
            "Document attempts the server ended for looping (vLLM repetition_detection: finish_reason repetition).",
            ["model", "task"],
            registry=self.registry,
        )
        self.page_fallbacks = Counter(
            "gateway_page_fallbacks",
            "Pages answered from a fallback (pdf_text: a PDF's embedded text) after the model's output stayed invalid.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.output_tokens = Counter(
            "gateway_output_tokens",
            "Completion tokens the models generated for document tasks.",
            ["model", "task"],
            registry=self.registry,
        )

        self.cache_hits = Counter(
            "gateway_cache_hits",
            "Documents answered from the result cache (GATEWAY_CACHE_MAX_BYTES), by model and task.",
            ["model", "task"],
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "gateway_cache_misses",
            "Documents looked up in the result cache and not found, by model and task.",
            ["model", "task"],
            registry=self.registry,
        )

        self.auth_failures = Counter(
            "gateway_auth_failures",
            "Requests refused with 401, by reason: missing (no Bearer key), invalid (an unknown key).",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited",
            "Requests refused with 429, by the API key's name (never the key) and limit (requests, concurrency).",
            ["key", "limit"],
            registry=self.registry,
        )
        self.request_timeouts = Counter(
            "gateway_request_timeouts",
            "Requests cut off by their deadline (GATEWAY_REQUEST_TIMEOUT_S or a shorter X-Request-Timeout), by route.",
            ["route"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "gateway_connections_refused",
            "Connections the server closed before a request ran, by reason: too_many_connections, "
            "headers_too_large, too_many_headers, header_timeout, body_timeout (gateway/http/connection_guard.py).",
            ["reason"],
            registry=self.registry,
        )

        self.remote_image_fetches = Counter(
            "gateway_remote_image_fetches",
            "Remote image URLs (GATEWAY_REMOTE_IMAGE_DOMAINS), by outcome: ok, refused_url, refused_domain, "
            "refused_address, too_large, timeout, http_error, too_many_redirects, unreachable, not_image, cancelled.",
            ["outcome"],
            registry=self.registry,
        )
        self.remote_image_seconds = Histogram(
            "gateway_remote_image_fetch_seconds",
            "Time to fetch one remote image (or to give up on it): DNS, connect, redirects and body.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.remote_image_bytes = Counter(
            "gateway_remote_image_bytes",
            "Bytes of remote images fetched in full and sent on to the models.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)
