"""The model registry: one YAML file per model in `model_configs/`, validated at start-up.

Per-model behaviour lives in these files as data (prompts, sampling, image policy, serving flags,
architecture numbers for the memory planner); code reads them and never branches on a model's name.
A bad file stops the gateway with a message naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from gateway.models.config_sections import (
    MM_PIXEL_PLACEHOLDERS,
    Architecture,
    Engine,
    ImagePolicy,
    RepetitionDetection,
    SamplingDefaults,
    Serving,
    Strict,
)
from gateway.settings import check_base_url

__all__ = [
    "MM_PIXEL_PLACEHOLDERS",
    "Architecture",
    "ConfigError",
    "Engine",
    "ImagePolicy",
    "ModelConfig",
    "PromptKey",
    "ReaderName",
    "RepetitionDetection",
    "SamplingDefaults",
    "Serving",
    "Task",
    "load_model_config",
    "load_registry",
    "read_yaml_model",
]

M = TypeVar("M", bound=BaseModel)
# extract: answers structured outputs (a JSON schema) well enough to fill a form from a page; no prompt file.
Task = Literal["chat", "ocr", "layout", "grounding", "extract"]
# layout_all/layout_detect: a document page's blocks with or without text; layout_web: a web page's blocks;
# layout_scene: text lines spotted in a photo. Each is one `mode` of /v1/layout.
PromptKey = Literal["layout_all", "layout_detect", "layout_web", "layout_scene", "ocr", "grounding"]
# How an answer is read into elements + Markdown (gateway/documents/output/readers.py):
#   markdown          text as Markdown (HTML or OTSL tables, LaTeX), no boxes
#   dots_layout_json  dots.ocr's JSON array of {bbox, category, text}, its categories only
#   dots_web_json     the same JSON for web pages, whose category set is not published: any category kept
#   quad_lines        "(x1, y1), (x2, y2), (x3, y3), (x4, y4) text" per line (dots.mocr scene spotting)
#   grounding_tags    <|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|> then the block's text (DeepSeek-OCR)
#   marker_blocks     ![label](x1,y1,x2,y2) then the block's text (LightOnOCR-3 grounding)
ReaderName = Literal["markdown", "dots_layout_json", "dots_web_json", "quad_lines", "grounding_tags", "marker_blocks"]
BOX_READERS = frozenset({"dots_layout_json", "dots_web_json", "quad_lines", "grounding_tags", "marker_blocks"})
# The prompts a task cannot run without (layout_detect, layout_web and layout_scene are optional modes).
_TASK_PROMPTS: dict[str, tuple[str, ...]] = {
    "ocr": ("ocr",),
    "layout": ("layout_all",),
    "grounding": ("grounding",),
}


class ConfigError(Exception):
    """A model config (or the settings that refer to it) is invalid; the message says where."""


class ModelConfig(Strict):
    """One model: identity, what it can do, where it is served and how."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$", description="public name = the server's model name")
    description: str
    hf_repo: str = Field(pattern=r"^[\w.\-]+/[\w.\-]+$")
    revision: str = Field(min_length=1)
    licence: str
    # What the licence forbids that matters to a gateway (e.g. offering the model as an API outside your org).
    licence_note: str | None = None
    # The OpenAI-compatible server that runs it; None when no maintained engine can.
    engine: Engine | None
    unsupported_reason: str | None = None
    alternative: str | None = Field(None, description="the served model that does the same job, when engine is None")
    tasks: list[Task] = Field(min_length=1)
    upstreams: list[str] = Field(default_factory=list)
    api_key_env: str | None = Field(None, description="environment variable holding the upstream's API key")
    prompts: dict[PromptKey, str] = Field(default_factory=dict, description="prompt key -> file under prompts/")
    prompt_prefix: str = Field("", description="text sent before every document prompt (dots.ocr: its image tokens)")
    grounding_box_format: str | None = Field(
        None, description="how a box is appended to the grounding prompt, e.g. '[{x1}, {y1}, {x2}, {y2}]'"
    )
    # The reader of the layout prompts' answers; OCR and grounding answers are Markdown unless prompt_readers says.
    output_reader: ReaderName | None = None
    prompt_readers: dict[PromptKey, ReaderName] = Field(default_factory=dict)
    # Boxes on a 0..box_grid scale of the image (DeepSeek 999, LightOnOCR 1000); None: model-input pixels.
    box_grid: int | None = Field(None, ge=1)
    # The model's block labels -> the categories Markdown and overlays know (Picture, Table, Formula, ...).
    box_labels: dict[str, str] = Field(default_factory=dict)
    # Special tokens the server leaves in answers when the config asks for skip_special_tokens=false.
    strip_markers: list[str] = Field(default_factory=list)
    sampling: SamplingDefaults
    image: ImagePolicy
    architecture: Architecture
    serving: Serving | None = None

    @property
    def servable(self) -> bool:
        """Whether some engine serves it (the gateway can route to it)."""
        return self.engine is not None

    def reader(self, key: PromptKey) -> ReaderName:
        """How the answer to prompt `key` is read."""
        if key in self.prompt_readers:
            return self.prompt_readers[key]
        if key.startswith("layout_") and self.output_reader is not None:
            return self.output_reader
        return "markdown"

    @field_validator("upstreams")
    @classmethod
    def _base_urls(cls, urls: list[str]) -> list[str]:
        return [check_base_url(url) for url in urls]

    @model_validator(mode="after")
    def _support_is_explained(self) -> ModelConfig:
        if self.engine is not None:
            if self.serving is None:
                raise ValueError(f"a model the {self.engine} engine serves needs a `serving` section")
            if not self.upstreams:
                raise ValueError("a served model needs at least one upstream URL")
        elif not self.unsupported_reason or not self.alternative:
            raise ValueError("engine is null: say why in `unsupported_reason` and name an `alternative`")
        for task in self.tasks:
            missing = [key for key in _TASK_PROMPTS.get(task, ()) if key not in self.prompts]
            if missing:
                raise ValueError(f"task {task!r} needs prompts {missing}")
        if "grounding" in self.tasks and not self.grounding_box_format:
            raise ValueError("task 'grounding' needs `grounding_box_format`")
        # /v1/layout only for models whose layout answers carry boxes.
        layout_keys = [key for key in self.prompts if key.startswith("layout_")]
        boxless = [key for key in layout_keys if self.reader(key) not in BOX_READERS]
        if "layout" in self.tasks and boxless:
            raise ValueError(f"task 'layout' needs a box reader (`output_reader`) for {boxless}")
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
