"""The sections of a model config that are not its identity: sampling, image policy, architecture, serving.

Split from `registry.py` so each stays readable; `registry.ModelConfig` puts them together and checks them
against each other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

Engine = Literal["vllm", "llama.cpp", "transformers"]


class Strict(BaseModel):
    # A misspelt key is a bug in the file, not something to ignore.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepetitionDetection(Strict):
    """vLLM's per-request `repetition_detection` (`RepetitionDetectionParams`): end generation on a loop.

    vLLM checks, after each token, whether the last `n` tokens (min_pattern_size <= n <= max_pattern_size) repeat
    `min_count` times in a row; if so it stops with finish_reason "repetition" and stop_reason
    "repetition_detected" (vllm/v1/core/sched/utils.py `check_stop`). Its own validation is mirrored here.
    """

    max_pattern_size: int = Field(ge=1)
    min_pattern_size: int = Field(0, ge=0)
    min_count: int = Field(ge=2)

    @model_validator(mode="after")
    def _sizes_ordered(self) -> RepetitionDetection:
        if self.min_pattern_size > self.max_pattern_size:
            raise ValueError("min_pattern_size must not exceed max_pattern_size")
        return self


class SamplingDefaults(Strict):
    """Sampling the gateway sends unless the request overrides it within `max_completion_tokens_cap`."""

    temperature: float = Field(ge=0, le=2)
    top_p: float = Field(gt=0, le=1)
    max_completion_tokens: int = Field(ge=1)
    max_completion_tokens_cap: int = Field(ge=1)
    # Temperatures for the second, third... attempt at a document page whose output stayed invalid.
    retry_temperatures: list[float] = Field(default_factory=list, max_length=5)
    # Sent with every document request so the server itself cuts a looping answer (None: not sent).
    repetition_detection: RepetitionDetection | None = None
    # Fields the official client sends besides sampling (vLLM extras such as skip_special_tokens, vllm_xargs).
    extra_body: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("retry_temperatures")
    @classmethod
    def _temperatures_in_range(cls, values: list[float]) -> list[float]:
        if any(not 0 <= value <= 2 for value in values):
            raise ValueError("every retry temperature must be within [0, 2]")
        return values

    @model_validator(mode="after")
    def _default_within_cap(self) -> SamplingDefaults:
        if self.max_completion_tokens > self.max_completion_tokens_cap:
            raise ValueError("max_completion_tokens must not exceed max_completion_tokens_cap")
        return self

    @model_validator(mode="after")
    def _retries_can_sample(self) -> SamplingDefaults:
        # top_k 1 keeps only the likeliest token, so every temperature gives the greedy answer again: the retries
        # would repeat the first attempt. (With MTP drafting, vLLM 0.32's CPU build also died on such requests.)
        if self.extra_body.get("top_k") == 1 and any(temperature > 0 for temperature in self.retry_temperatures):
            raise ValueError("extra_body top_k 1 makes every retry temperature greedy: drop top_k or the retries")
        return self


class ImagePolicy(Strict):
    """The model's smart-resize policy: sides are multiples of `factor`, area within [min, max] pixels, and
    the longer side at most `max_side` when the processor also bounds it (Pixtral's `longest_edge`)."""

    min_pixels: int = Field(ge=1)
    max_pixels: int = Field(ge=1)
    factor: int = Field(ge=1)
    max_side: int | None = Field(None, ge=1, description="longest side in pixels; None: only the area bounds it")

    @model_validator(mode="after")
    def _min_below_max(self) -> ImagePolicy:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        if self.max_side is not None and self.max_side < self.factor:
            raise ValueError("max_side must be at least one factor")
        return self


class Architecture(Strict):
    """Numbers the GPU memory planner needs, from the model's config.json."""

    parameters_b: float = Field(gt=0, description="total parameters, billions")
    vision_parameters_b: float = Field(ge=0, description="vision encoder parameters, billions")
    layers: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    dtype: Literal["bfloat16", "float16", "float32"]
    max_position_embeddings: int = Field(ge=1)
    image_token_pixels: int = Field(ge=1, description="side in pixels of the square one image token covers")
    # Models with fixed resolution modes (DeepSeek-OCR's global view + tiles) spend a bounded number of tokens on
    # an image whatever its pixels; the planner takes the smaller of this and pixels / image_token_pixels².
    image_tokens_max: int | None = Field(None, ge=1)
    # Language-model parameters vLLM's online fp8 (`--quantization fp8`) leaves at the model's dtype: it
    # quantizes the linear layers that receive its quant config, and some models keep others as plain tensors
    # (moondream3's MoE experts). The planner counts them at full width under fp8.
    fp8_unquantized_parameters_b: float = Field(0.0, ge=0, description="parameters fp8 leaves unquantized, billions")

    @model_validator(mode="after")
    def _parts_within_total(self) -> Architecture:
        if self.vision_parameters_b + self.fp8_unquantized_parameters_b > self.parameters_b:
            raise ValueError("vision_parameters_b + fp8_unquantized_parameters_b exceed parameters_b")
        return self


# The placeholders `serving.mm_processor_kwargs` may use; the launchers put the numbers in.
MM_PIXEL_PLACEHOLDERS = ("{min_pixels}", "{max_pixels}")


class Serving(Strict):
    """How to start this model's server (the launchers turn it into the engine's argv)."""

    port: int = Field(ge=1, le=65535)
    max_model_len: int = Field(ge=1)
    max_num_seqs: int = Field(ge=1)
    trust_remote_code: bool = False
    # vLLM's --mm-processor-kwargs, in the keys this model's processor reads. A string value "{min_pixels}" or
    # "{max_pixels}" becomes that bound of the image policy, as the memory plan caps it.
    mm_processor_kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    # How many frames the server's processor counts one image as against those bounds: GLM-4V's image processors
    # (GLM-OCR's) keep `temporal_patch_size · h · w` within them, 2 · h · w; Qwen's keep h · w. The launchers
    # multiply the placeholders' numbers by it, so the image policy stays in h · w pixels for everyone else.
    mm_pixel_frames: int = Field(1, ge=1)
    # A quantization the checkpoint needs whatever the card ("fp8" for an fp8 checkpoint); the planner may add
    # fp8 on its own when a set does not fit.
    quantization: Literal["fp8"] | None = None
    # transformers serve: the folder it loads (relative to the project) instead of the hub id, and a chat
    # template (relative to model_configs/) the launchers copy into it as chat_template.jinja.
    model_dir: str | None = None
    chat_template: str | None = None
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("mm_processor_kwargs")
    @classmethod
    def _known_placeholders(cls, kwargs: dict[str, JsonValue]) -> dict[str, JsonValue]:
        def check(value: JsonValue) -> None:
            if isinstance(value, dict):
                for item in value.values():
                    check(item)
            elif isinstance(value, list):
                for item in value:
                    check(item)
            elif isinstance(value, str) and "{" in value and value not in MM_PIXEL_PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {value!r}; known: {', '.join(MM_PIXEL_PLACEHOLDERS)}")

        check(kwargs)
        return kwargs

    @field_validator("extra_args")
    @classmethod
    def _kwargs_in_one_place(cls, args: list[str]) -> list[str]:
        if any(arg.split("=", 1)[0] == "--mm-processor-kwargs" for arg in args):
            raise ValueError("put --mm-processor-kwargs in `serving.mm_processor_kwargs`, not in extra_args")
        return args
