"""What the stand-in serves (`StandinConfig`) and which faults it injects (`Faults`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.models.registry import ImagePolicy

ErrorShape = Literal["nested", "flat"]
Responder = Callable[[dict[str, Any]], str]

DEFAULT_REPLY = "This is a simulated reply from the vLLM stand-in; no model ran."


@dataclass(frozen=True)
class StandinConfig:
    """The `vllm serve` settings the stand-in imitates, plus its simulation knobs.

    `models` are the served names (`--served-model-name`); the first one is reported in every
    response's `model` and in the metrics' `model_name` label, as vLLM does.
    """

    models: tuple[str, ...]
    root: str = ""  # the HF id shown as `root` in /v1/models; "" means the first served name
    max_model_len: int = 8192
    latency_s: float = 0.0  # time to first token, or before a non-stream response
    tokens_per_s: float = 0.0  # 0 sends every token at once
    max_num_seqs: int = 256  # requests beyond this wait and count in vllm:num_requests_waiting
    reply: str = DEFAULT_REPLY
    # Computes the reply from the request JSON when set; it runs on the server's event loop,
    # so it must be quick (a lookup, not a model).
    responder: Responder | None = None
    api_key: str | None = None  # guards /v1/* like `vllm serve --api-key`
    error_shape: ErrorShape = "nested"  # "flat" is the pre-v0.10.1 error body
    chunk_tokens: int = 1  # tokens per streamed content chunk
    image_tokens: int = 256  # simulated prompt tokens per image when there is no image_policy
    # The model's smart-resize rule: images then cost what vLLM counts, (h/factor)*(w/factor) after resizing
    # plus `image_wrapper_tokens` (Qwen2-VL's <|vision_start|>/<|vision_end|> around the placeholder).
    image_policy: ImagePolicy | None = None
    image_wrapper_tokens: int = 2
    max_images_per_prompt: int | None = None  # `--limit-mm-per-prompt '{"image": N}'`; None: no limit
    record_bodies: bool = True  # keep request JSON in the records (off for long benchmarks)
    max_records: int = 10_000  # oldest records are dropped beyond this, so benchmarks stay bounded

    def __post_init__(self) -> None:
        # Accept a list from callers but keep the frozen value hashable and immutable.
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models or not all(isinstance(m, str) and m for m in self.models):
            raise ValueError("StandinConfig.models needs at least one non-empty served name")
        if not self.root:
            object.__setattr__(self, "root", self.models[0])
        if self.error_shape not in ("nested", "flat"):
            raise ValueError(f"error_shape must be 'nested' or 'flat', not {self.error_shape!r}")
        for name in ("max_model_len", "max_num_seqs", "chunk_tokens", "max_records"):
            if getattr(self, name) < 1:
                raise ValueError(f"StandinConfig.{name} must be at least 1")
        for name in ("latency_s", "tokens_per_s", "image_tokens", "image_wrapper_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"StandinConfig.{name} must not be negative")

    @property
    def served_name(self) -> str:
        """The name vLLM reports in responses and metrics: the first served name."""
        return self.models[0]


# The JSON types each fault accepts over HTTP; bool is excluded from ints on purpose.
_FAULT_KINDS: dict[str, tuple[type, ...]] = {
    "fail_next": (int,),
    "fail_status": (int,),
    "drop_next": (int,),
    "garbage_next": (int,),
    "stream_error_after": (int, type(None)),
    "stream_cut_after": (int, type(None)),
    "healthy": (bool,),
    "extra_latency_s": (int, float),
}


@dataclass
class Faults:
    """Failures to inject, changeable at runtime (Python or `POST /_standin/faults`).

    The `*_next` counters apply to the next N chat completion requests and count down.
    `stream_error_after` / `stream_cut_after` apply to every stream while set: after N content
    chunks the stream gets vLLM's mid-stream error event (then `[DONE]`), or its connection is
    closed abruptly. If the reply has N chunks or fewer, the stream completes normally.
    """

    fail_next: int = 0
    fail_status: int = 503
    drop_next: int = 0
    garbage_next: int = 0
    stream_error_after: int | None = None
    stream_cut_after: int | None = None
    healthy: bool = True
    extra_latency_s: float = 0.0

    def update(self, values: Mapping[str, Any]) -> None:
        """Set the given fields, validating names and JSON types first (all or nothing)."""
        for name, value in values.items():
            kinds = _FAULT_KINDS.get(name)
            if kinds is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(_FAULT_KINDS)}")
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                raise ValueError(f"fault {name!r} has the wrong type: {value!r}")
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"fault {name!r} must not be negative")
        if "fail_status" in values and not 400 <= values["fail_status"] <= 599:
            raise ValueError("fault 'fail_status' must be an HTTP error status (400-599)")
        for name, value in values.items():
            setattr(self, name, float(value) if name == "extra_latency_s" else value)

    def reset(self) -> None:
        """Back to no faults, in place, so references held elsewhere see the change."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, field.default)

    def to_dict(self) -> dict[str, Any]:
        """The fault settings as JSON-ready data."""
        return dataclasses.asdict(self)
