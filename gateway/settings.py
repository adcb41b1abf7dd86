"""Gateway settings, read from `GATEWAY_*` environment variables.

Routes reach them through the `get_settings` dependency (see `routes/dependencies.py`), never through a module
global, so a test builds its own `Settings(...)` and hands it to `create_app`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# scheme://host[:port] as browsers send it in `Origin`: no path, no trailing slash.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")


def default_store_path() -> Path:
    """`$XDG_DATA_HOME/vlm-gateway/gateway-store.sqlite3` (`~/.local/share/...` when XDG_DATA_HOME is unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "vlm-gateway" / "gateway-store.sqlite3"


class Settings(BaseSettings):
    """Everything an operator can change without editing code."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    # json: one JSON object per line with the request id (gateway/observability/log_format.py); text: for a terminal.
    log_format: Literal["json", "text"] = "json"

    model_configs_dir: Path = PROJECT_ROOT / "model_configs"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    # Which configured models this gateway serves; empty means every model vLLM can serve. Readiness only
    # waits for these, so a deployment running two of the six models is still "ready".
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)  # comma-separated
    # {"<model>": "<base url>" | ["<url>", ...]}: replaces the upstream base URLs from the model configs.
    upstreams: dict[str, list[str]] = Field(default_factory=dict)

    # {"<model>": max_pixels}: the image cap each upstream's processor was started with when a memory plan
    # lowered it (`--mm-processor-kwargs`). The gateway must resize to the same cap, or the server would
    # resize again and the model's boxes would no longer map to the client's pixels.
    model_max_pixels: dict[str, int] = Field(default_factory=dict)

    # Upstream timeouts, in seconds. `pool` is the wait for a free pooled connection plus the TCP connect;
    # `read` is the longest silence between two bytes from the upstream (not the whole response, so a long
    # stream that keeps talking is never cut).
    connect_timeout_s: float = Field(5.0, gt=0)
    pool_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)
    max_connections_per_upstream: int = Field(1024, ge=1)

    # Retries of connection failures and upstream 502/503, only before any byte reached the client.
    retry_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_s: float = Field(0.05, ge=0)

    max_body_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    # What an upstream may send back (gateway/upstream/answer_body.py): a non-streamed answer, decoded, and one
    # server-sent event of a stream. Past either: 502 bad_gateway naming the setting. vLLM's answers are KBs;
    # top-20 logprobs over a 32k-token answer are ~50 MB, hence the generous answer cap.
    max_upstream_answer_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_sse_event_bytes: int = Field(1024 * 1024, ge=1024)
    # Chat requests asking for more (`max_tokens` or `max_completion_tokens`) get a 400; None: no cap.
    max_completion_tokens: int | None = Field(None, ge=1)
    # Decompression-bomb guard for document images, checked from the header before decoding. A 200-DPI A3
    # page is 7.7 MP; 64 MP leaves room for large scans.
    max_upload_pixels: int = Field(64_000_000, ge=1)
    # Documents: pages per request (after `pages` selection), pages a PDF may have at all (a PDF bomb guard),
    # pages of one model in flight at once (enough to keep vLLM's batch full), files per multipart batch.
    max_pages_per_request: int = Field(100, ge=1)
    max_document_pages: int = Field(2000, ge=1)
    page_concurrency: int = Field(8, ge=1)
    max_batch_files: int = Field(20, ge=1)
    # PDF render workers (gateway/documents/sources/render_pool.py): a page still drawing after this long is
    # stopped (its worker killed and replaced), and each worker's address space is capped at this many bytes,
    # so one hostile PDF (millions of strokes: minutes and ~850 MB per page) cannot hold the CPUs or the host's
    # memory. An A3 page at 200 dpi draws in well under a second in ~150 MB.
    # Decoded image pixels in flight across all requests (gateway/documents/pixel_budget.py): ~7 bytes each at
    # the peak of a decode, so the default bounds decoding to about 900 MB; a page waits for room up to
    # `decode_wait_s`, then gets a 503 with Retry-After.
    decode_pixel_budget: int = Field(128_000_000, ge=1_000_000)
    decode_wait_s: float = Field(30.0, gt=0)
    render_timeout_s: float = Field(60.0, gt=0)
    render_max_bytes: int = Field(1024 * 1024 * 1024, ge=256 * 1024 * 1024)
    # Remote images (gateway/security/remote_images.py): http(s) image URLs are fetched by the gateway itself, and only
    # from these hosts (`images.example.com`, or `*.example.com` for its subdomains); empty: refused, send
    # data: URLs. Every address a host resolves to must be public; no setting loosens that.
    remote_image_domains: Annotated[list[str], NoDecode] = Field(default_factory=list)  # comma-separated
    # Each image is cut off at this size, and given this long in all (DNS, connect, redirects, body), so a
    # slow or endless server cannot hold a request; redirects are followed this many times at most.
    remote_image_max_bytes: int = Field(10 * 1024 * 1024, ge=1)
    remote_image_timeout_s: float = Field(10.0, gt=0)
    remote_image_max_redirects: int = Field(3, ge=0, le=10)
    # Remote images one chat request may name: each is a fetch the gateway makes on the client's behalf.
    remote_image_max_per_request: int = Field(8, ge=1)

    # Field extraction (`document_annotation_format`, `bbox_annotation_format` on /v1/ocr; gateway/extraction/):
    # the model that answers with structured outputs, unless a request names one (`annotation_model`); empty:
    # the first served model whose config lists the `extract` task. Its answer is bounded to
    # `annotation_max_tokens` (a constrained model can loop on whitespace until it hits the cap), a schema to
    # `annotation_max_schema_bytes`, and the OCR text it reads to `annotation_max_text_chars`.
    annotation_model: str = ""
    # Model names a Mistral-style OCR request may use for a served model: {"<alias>": "<model>"}.
    ocr_model_aliases: dict[str, str] = Field(default_factory=lambda: {"mistral-ocr-latest": "dots-ocr"})
    annotation_max_tokens: int = Field(1024, ge=16)
    annotation_max_schema_bytes: int = Field(64 * 1024, ge=256)
    annotation_max_text_chars: int = Field(24_000, ge=1000)

    # SIGTERM: stop accepting, let in-flight requests finish for this long, then cancel them (and their
    # upstream requests) and shut down.
    shutdown_grace_s: int = Field(30, ge=0)  # whole seconds, as uvicorn takes it
    # The whole wall clock of one chat, OCR or layout request (not jobs, health, metrics or models); a client
    # may ask for less with `X-Request-Timeout: <seconds>` (gateway/http/request_deadline.py).
    request_timeout_s: float = Field(600.0, gt=0)

    # What one connection may cost before its request reaches the app (gateway/http/connection_guard.py): the
    # request head's size and header count (431 past them, as nginx's and Node's limits do), the time to send
    # the head and the longest silence inside a body (408), and connections held at once (one more: 503, closed).
    # The descriptor limit (ulimit -n) must allow two per connection (one to the client, one upstream).
    max_header_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_header_count: int = Field(100, ge=8, le=10_000)
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    max_connections: int = Field(2048, ge=1)
    listen_backlog: int = Field(2048, ge=1)  # connections the kernel queues before the gateway accepts them

    health_interval_s: float = Field(5.0, gt=0)
    health_timeout_s: float = Field(2.0, gt=0)
    # Replicas: this many failed requests in a row eject one (circuit breaker) until a /health probe readmits
    # it; every `load_interval_s` each replica's /metrics is read for vLLM's queue length, which with the
    # gateway's own outstanding requests decides where the next request goes.
    eject_after_failures: int = Field(3, ge=1)
    load_interval_s: float = Field(2.0, gt=0)

    # The durable store (SQLite): jobs, their uploads and results, and the document result cache. A file,
    # never `:memory:`: jobs must outlive the process. Finished jobs are deleted `job_result_ttl_s` after they
    # finish; at most `job_concurrency` jobs run at once; the cache holds at most `cache_max_bytes` (0: off).
    # By default in the user's data directory, never in whatever folder the gateway happens to start in.
    store_path: Path = Field(default_factory=lambda: default_store_path())
    job_result_ttl_s: float = Field(7 * 24 * 3600.0, gt=0)
    job_concurrency: int = Field(2, ge=1)
    cache_max_bytes: int = Field(256 * 1024 * 1024, ge=0)
    # With API keys, each key's jobs are its own; a key may hold at most this many unfinished (queued or
    # running) jobs, and this many bytes in the store (uploads of unfinished jobs plus kept results). Past
    # either, POST /v1/jobs is a 429 with Retry-After. 0: no bound.
    max_queued_jobs_per_key: int = Field(100, ge=0)
    max_job_bytes_per_key: int = Field(1024 * 1024 * 1024, ge=0)
    # With API keys, each key has cache entries of its own: a shared hit (`cached: true`) would tell one key that
    # another processed the same file. True shares them (one tenant, several keys). Without keys: always shared.
    cache_shared_across_keys: bool = False

    # API keys (gateway/security/auth.py): comma-separated keys, and/or a YAML file of {name, key, requests_per_minute?,
    # max_concurrency?}. None configured: the gateway is open. Limits per key, 0 = unlimited; shared by
    # replicas through Redis when `redis_url` is set (gateway/security/rate_limit.py).
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    keys_file: Path | None = None
    # /metrics with keys configured: unset (None) or true needs a key, false leaves it open. Its text names every
    # upstream URL and key name, so a gateway with keys guards it unless told otherwise. Without keys: open.
    metrics_require_key: bool | None = None
    default_rpm: int = Field(60, ge=0)
    default_max_concurrency: int = Field(16, ge=0)
    redis_url: str | None = None
    redis_slot_ttl_s: float = Field(60.0, gt=0)
    redis_fail_open: bool = False

    # Browsers on other sites (gateway/security/cors.py): comma-separated origins such as `https://app.example.com`, or
    # `*`; empty: no CORS at all. Credentials (cookies, TLS client certificates) only with listed origins.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cors_max_age_s: int = Field(600, ge=0)  # how long a browser may cache a preflight answer

    @field_validator("models", "api_keys", "remote_image_domains", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("remote_image_domains")
    @classmethod
    def _domains_are_host_names(cls, value: list[str]) -> list[str]:
        return [check_image_domain(entry) for entry in value]

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        if "*" in value and len(value) > 1:
            raise ValueError("`*` already allows every origin: give `*` alone or a list of origins")
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin.lower()):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path and no trailing slash "
                    "(what a browser sends in its Origin header)"
                )
        return [origin.lower() for origin in value]  # browsers send scheme and host in lower case

    @field_validator("cors_allow_credentials")
    @classmethod
    def _no_credentials_with_any_origin(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "*" in info.data.get("cors_origins", ()):
            raise ValueError(
                "cannot be true with GATEWAY_CORS_ORIGINS=*: browsers refuse credentials for a wildcard origin; "
                "list the origins instead"
            )
        return value

    @field_validator("store_path")
    @classmethod
    def _store_is_a_file(cls, value: Path) -> Path:
        if str(value) in ("", ".", ":memory:"):
            raise ValueError("must name a file (the store exists to outlive the process; `:memory:` would not)")
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _one_url_or_many(cls, value: Any) -> Any:
        """Accept `"url"` as shorthand for `["url"]`."""
        if isinstance(value, dict):
            return {name: [urls] if isinstance(urls, str) else urls for name, urls in value.items()}
        return value

    @field_validator("upstreams")
    @classmethod
    def _urls_are_base_urls(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, urls in value.items():
            if not urls:
                raise ValueError(f"model {name!r} has an empty upstream list")
        return {name: [check_base_url(url) for url in urls] for name, urls in value.items()}


def check_base_url(url: str) -> str:
    """Fail fast on an upstream URL that is not an http(s) base URL ending in /v1, like vLLM's."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"upstream URL {url!r} must start with http:// or https://")
    if not url.rstrip("/").endswith("/v1"):
        raise ValueError(f"upstream URL {url!r} must be a base URL ending in /v1")
    return url.rstrip("/")


# One DNS label: letters, digits and inner hyphens, at most 63 characters (RFC 1035; IDNs in their xn-- form).
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_image_domain(entry: str) -> str:
    """Fail fast on a remote-image allow-list entry that is not `host.name` or `*.host.name`; lower-cased."""
    name = entry.strip().lower().removesuffix(".")
    problem = _domain_entry_problem(name)
    if problem is not None:
        raise ValueError(f"remote image domain {entry!r}: {problem}")
    return name


def _domain_entry_problem(name: str) -> str | None:
    if "/" in name:
        return "give the host name alone, without a scheme or path"
    if "@" in name:
        return "give the host name alone, without a user name"
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:  # an address would skip the check made after DNS, and addresses are never what an allow-list means
        return "IP addresses are not allowed, only domain names"
    if ":" in name:
        return "give the host name alone, without a port (any port is allowed)"
    base = name.removeprefix("*.")
    labels = base.split(".")
    if "*" in base:
        return "a wildcard is only allowed as a leading `*.` (any subdomain)"
    if len(base) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return "not a valid host name (letters, digits, hyphens and dots; IDNs in their xn-- form)"
    if labels[-1].isdigit():
        return "looks like an IP address; only domain names are allowed"
    if base != name and len(labels) < 2:
        return "`*.` must be followed by a domain of at least two labels"
    return None
