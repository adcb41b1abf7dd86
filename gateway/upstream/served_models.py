"""The models this gateway serves, each with its upstream vLLM servers and what is known of their health and load.

Built once at start-up from the registry and the settings (`GATEWAY_MODELS`, `GATEWAY_UPSTREAMS`); a name
or key that does not add up stops the gateway before it listens. Which replica gets a request is decided
here (`ServedModel.attempt_order`), from state three parties keep up to date: the upstream client (requests
outstanding, the circuit breaker), the health prober (`healthy`) and the load scraper (vLLM's queue).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway.models.registry import ConfigError, ImagePolicy, ModelConfig, PromptKey
from gateway.settings import Settings
from gateway.upstream.circuit_breaker import CircuitBreaker


@dataclass
class Upstream:
    """One OpenAI-compatible server (normally `vllm serve`) and its last observed health."""

    base_url: str  # ends in /v1
    api_key: str | None = None
    healthy: bool | None = None  # None until the first probe
    max_model_len: int | None = None
    last_error: str | None = None
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(threshold=3))
    outstanding: int = 0  # this gateway's requests to it not finished yet (streams: until their last byte)
    queue_waiting: float | None = None  # vllm:num_requests_waiting at the last scrape; None: unknown

    @property
    def available(self) -> bool:
        """Worth sending a request to: not known to be down and its circuit breaker is not open."""
        return self.healthy is not False and self.breaker.allows_traffic

    def request_finished(self) -> None:
        """One of this gateway's requests to it is done (its body read, released or abandoned)."""
        self.outstanding -= 1

    def load(self) -> float:
        """Requests ahead of a new one here: ours in flight plus vLLM's own queue (other gateways' included)."""
        return self.outstanding + (self.queue_waiting or 0.0)

    @property
    def root_url(self) -> str:
        """The server root, where vLLM serves /health and /metrics."""
        return self.base_url.removesuffix("/v1")

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header this upstream wants, if it has a key."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass
class ServedModel:
    """A model the gateway routes to, with its config and replicas."""

    config: ModelConfig
    upstreams: tuple[Upstream, ...]
    prompts: dict[PromptKey, str] = field(default_factory=dict)  # exact texts, read at start-up
    image_policy: ImagePolicy | None = None  # the config's, or with the served cap from GATEWAY_MODEL_MAX_PIXELS
    _turn: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def image(self) -> ImagePolicy:
        """The resize policy to prepare document images with: what this model's servers actually run."""
        return self.image_policy or self.config.image

    @property
    def ready(self) -> bool:
        """At least one upstream answered its last health probe."""
        return any(upstream.healthy for upstream in self.upstreams)

    @property
    def max_model_len(self) -> int | None:
        """The context length the upstreams report (the smallest, if replicas disagree)."""
        lengths = [u.max_model_len for u in self.upstreams if u.max_model_len is not None]
        return min(lengths) if lengths else None

    def attempt_order(self) -> list[Upstream]:
        """Upstreams to try for one request, best first: the least loaded of those available, then the rest.

        Healthy replicas come before unprobed ones; down or ejected ones come last (tried only when nothing
        else is left, since they may have recovered). Equal loads take turns: the sort is stable over a
        rotating start, so idle replicas share requests round robin.
        """
        if len(self.upstreams) == 1:
            return list(self.upstreams)
        start = next(self._turn) % len(self.upstreams)
        rotated = self.upstreams[start:] + self.upstreams[:start]
        return sorted(rotated, key=_preference)


def _preference(upstream: Upstream) -> tuple[int, float]:
    tier = 0 if upstream.healthy else 1  # known healthy before not yet probed
    if not upstream.available:
        tier = 2
    return tier, upstream.load()


def build_served_models(registry: dict[str, ModelConfig], settings: Settings) -> dict[str, ServedModel]:
    """Select the served models and resolve their upstream URLs and keys; raise ConfigError on nonsense."""
    for variable, names in (
        ("GATEWAY_UPSTREAMS", settings.upstreams),
        ("GATEWAY_MODEL_MAX_PIXELS", settings.model_max_pixels),
    ):
        for name in names:
            if name not in registry:
                raise ConfigError(f"{variable} names {name!r}, which has no file in model_configs/")
    servable = [name for name, config in registry.items() if config.servable]
    chosen = settings.models or servable
    served: dict[str, ServedModel] = {}
    for name in chosen:
        config = registry.get(name)
        if config is None:
            raise ConfigError(f"GATEWAY_MODELS names {name!r}, which has no file in model_configs/")
        if not config.servable:
            raise ConfigError(f"GATEWAY_MODELS names {name!r}, which no engine serves: {config.unsupported_reason}")
        api_key = _api_key(config)
        urls = settings.upstreams.get(name, config.upstreams)
        prompts = {key: _read_prompt(settings.prompts_dir / path) for key, path in config.prompts.items()}
        upstreams = tuple(Upstream(url, api_key, breaker=CircuitBreaker(settings.eject_after_failures)) for url in urls)
        served[name] = ServedModel(config, upstreams, prompts, _served_image_policy(config, settings))
    return served


def _served_image_policy(config: ModelConfig, settings: Settings) -> ImagePolicy | None:
    max_pixels = settings.model_max_pixels.get(config.name)
    if max_pixels is None:
        return None
    if not config.image.min_pixels <= max_pixels <= config.image.max_pixels:
        raise ConfigError(
            f"GATEWAY_MODEL_MAX_PIXELS: {config.name} must stay within its config's "
            f"[{config.image.min_pixels}, {config.image.max_pixels}], got {max_pixels}"
        )
    return config.image.model_copy(update={"max_pixels": max_pixels})


def _read_prompt(path: Path) -> str:
    # Bytes, not read_text(): the official prompts must reach the model byte for byte, final newline and all.
    return path.read_bytes().decode("utf-8")


def _api_key(config: ModelConfig) -> str | None:
    if config.api_key_env is None:
        return None
    key = os.environ.get(config.api_key_env)
    if not key:
        raise ConfigError(
            f"model_configs/{config.name}.yaml: field `api_key_env`: environment variable "
            f"{config.api_key_env} is not set"
        )
    return key
