"""The model registry: one YAML file per model in `model_configs/`, validated at start-up.

Per-model behaviour lives in these files as data (prompts, sampling, image policy, serving flags,
architecture numbers for the memory planner); code reads them and never branches on a model's name.
A bad file stops the gateway with a message naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from gateway.settings import check_base_url

M = TypeVar("M", bound=BaseModel)
# extract: answers structured outputs (a JSON schema) well enough to fill a form from a page; no prompt file.
Task = Literal["chat", "ocr", "layout", "grounding", "extract"]
PromptKey = Literal["layout_all", "layout_detect", "ocr", "grounding"]
# The prompts a task cannot run without.
_TASK_PROMPTS: dict[str, tuple[str, ...]] = {
    "ocr": ("ocr",),
    "layout": ("layout_all", "layout_detect"),
    "grounding": ("grounding",),
}


class ConfigError(Exception):
    """A model config (or the settings that refer to it) is invalid; the message says where."""


class _Strict(BaseModel):
    # A misspelt key is a bug in the file, not something to ignore.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingDefaults(_Strict):
    """Sampling the gateway sends unless the request overrides it within `max_completion_tokens_cap`."""

    temperature: float = Field(ge=0, le=2)
    top_p: float = Field(gt=0, le=1)
    max_completion_tokens: int = Field(ge=1)
    max_completion_tokens_cap: int = Field(ge=1)
    # Temperatures for the second, third... attempt at a document page whose output stayed invalid.
    retry_temperatures: list[float] = Field(default_factory=list, max_length=5)

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


class ImagePolicy(_Strict):
    """The model's smart-resize policy: sides are multiples of `factor`, area within [min, max] pixels."""

    min_pixels: int = Field(ge=1)
    max_pixels: int = Field(ge=1)
    factor: int = Field(ge=1)

    @model_validator(mode="after")
    def _min_below_max(self) -> ImagePolicy:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self


class Architecture(_Strict):
    """Numbers the GPU memory planner needs, from the model's config.json."""

    parameters_b: float = Field(gt=0, description="total parameters, billions")
    vision_parameters_b: float = Field(ge=0, description="vision encoder parameters, billions")
    layers: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    dtype: Literal["bfloat16", "float16", "float32"]
    max_position_embeddings: int = Field(ge=1)
    image_token_pixels: int = Field(ge=1, description="side in pixels of the square one image token covers")


# The placeholders `serving.mm_processor_kwargs` may use; the launchers put the numbers in.
MM_PIXEL_PLACEHOLDERS = ("{min_pixels}", "{max_pixels}")


class Serving(_Strict):
    """How to start this model's `vllm serve` (the launchers turn it into an argv)."""

    port: int = Field(ge=1, le=65535)
    max_model_len: int = Field(ge=1)
    max_num_seqs: int = Field(ge=1)
    trust_remote_code: bool = False
    # vLLM's --mm-processor-kwargs, in the keys this model's processor reads. A string value "{min_pixels}" or
    # "{max_pixels}" becomes that bound of the image policy, as the memory plan caps it.
    mm_processor_kwargs: dict[str, JsonValue] = Field(default_factory=dict)
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


class ModelConfig(_Strict):
    """One model: identity, what it can do, where it is served and how."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="public name = vLLM --served-model-name")
    description: str
    hf_repo: str = Field(pattern=r"^[\w.\-]+/[\w.\-]+$")
    revision: str = Field(min_length=1)
    licence: str
    vllm_supported: bool
    unsupported_reason: str | None = None
    tasks: list[Task] = Field(min_length=1)
    upstreams: list[str] = Field(default_factory=list)
    api_key_env: str | None = Field(None, description="environment variable holding the upstream's API key")
    prompts: dict[PromptKey, str] = Field(default_factory=dict, description="prompt key -> file under prompts/")
    prompt_prefix: str = Field("", description="text sent before every document prompt (dots.ocr: its image tokens)")
    grounding_box_format: str | None = Field(
        None, description="how a box is appended to the grounding prompt, e.g. '[{x1}, {y1}, {x2}, {y2}]'"
    )
    sampling: SamplingDefaults
    image: ImagePolicy
    architecture: Architecture
    serving: Serving | None = None

    @field_validator("upstreams")
    @classmethod
    def _base_urls(cls, urls: list[str]) -> list[str]:
        return [check_base_url(url) for url in urls]

    @model_validator(mode="after")
    def _support_is_explained(self) -> ModelConfig:
        if self.vllm_supported:
            if self.serving is None:
                raise ValueError("a model vLLM serves needs a `serving` section")
            if not self.upstreams:
                raise ValueError("a model vLLM serves needs at least one upstream URL")
        elif not self.unsupported_reason:
            raise ValueError("vllm_supported is false: say why in `unsupported_reason`")
        for task in self.tasks:
            missing = [key for key in _TASK_PROMPTS.get(task, ()) if key not in self.prompts]
            if missing:
                raise ValueError(f"task {task!r} needs prompts {missing}")
        if "grounding" in self.tasks and not self.grounding_box_format:
            raise ValueError("task 'grounding' needs `grounding_box_format`")
        if self.serving is not None:
            context = self.serving.max_model_len
            if context > self.architecture.max_position_embeddings:
                raise ValueError(
                    f"serving.max_model_len {context} exceeds the model's context "
                    f"(architecture.max_position_embeddings {self.architecture.max_position_embeddings})"
                )
            if self.sampling.max_completion_tokens_cap > context:
                raise ValueError(f"sampling.max_completion_tokens_cap exceeds serving.max_model_len {context}")
        return self


def read_yaml_model(path: Path, model: type[M]) -> M:
    """A YAML file validated into `model`; ConfigError naming the file and the first bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a YAML mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise ConfigError(f"{path}: field `{field}`: {first['msg']}") from exc


def load_model_config(path: Path, prompts_dir: Path) -> ModelConfig:
    """Read and validate one YAML file; its prompt files must exist."""
    config = read_yaml_model(path, ModelConfig)
    if config.name != path.stem:
        raise ConfigError(f"{path}: field `name`: {config.name!r} must match the file name {path.stem!r}")
    for key, relative in config.prompts.items():
        if not (prompts_dir / relative).is_file():
            raise ConfigError(f"{path}: field `prompts.{key}`: no prompt file {prompts_dir / relative}")
    return config


def load_registry(configs_dir: Path, prompts_dir: Path) -> dict[str, ModelConfig]:
    """Every `*.yaml` in `configs_dir`, by model name."""
    files = sorted(configs_dir.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{configs_dir}: no model configs (*.yaml) found")
    return {config.name: config for config in (load_model_config(f, prompts_dir) for f in files)}
