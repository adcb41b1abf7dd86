"""The engines that serve models, and each one's argv, health path, container image and start-up failures.

Which engine runs a model is data (`engine:` in its config); this table is what the launchers need to know
about each engine, so `up`, `status` and the compose generator treat every upstream alike: one more
OpenAI-compatible server that answers a health path.

* vllm: `vllm serve`, pinned at 0.32.0 (pyproject's `serve` extra; the official image `vllm/vllm-openai`).
* llama.cpp: `llama-server` (official image `ghcr.io/ggml-org/llama.cpp`, `:server-cuda` for NVIDIA cards:
  the plain `:server` tag is CPU only). `-hf <repo>` fetches the GGUF and its projector (`--mmproj`)
  together (llama.cpp docs/multimodal.md). GET /health answers 503 while the model loads, 200 once ready.
* transformers: `transformers serve <repo>` (transformers[serving]); GET /health. No official image.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.models.registry import ModelConfig
from gateway.settings import PROJECT_ROOT
from launchers.errors import LauncherError

VLLM_VERSION = "0.32.0"  # pinned; pyproject's `serve` extra says vllm==0.32.0 (the newest CPU build the real tier runs)
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
LLAMA_CPP_IMAGE = "ghcr.io/ggml-org/llama.cpp:server-cuda"


@dataclass(frozen=True)
class EngineInfo:
    """What the launchers need to run one engine."""

    executable: tuple[str, ...]  # what precedes the arguments on a machine (`up`)
    health_path: str  # answers 200 once the model is loaded
    image: str | None  # the official container image, whose entrypoint takes the arguments; None: none exists
    # The container's health probe, {port} filled in: vLLM's image has python3, llama.cpp's has curl.
    probe: tuple[str, ...]
    # Start-up log lines that explain a failure, with the change that usually helps (see startup_log.py).
    failures: tuple[tuple[str, str], ...] = ()


_PYTHON_PROBE = (
    "python3",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://localhost:{port}/health', timeout=5)",
)

ENGINES: dict[str, EngineInfo] = {
    "vllm": EngineInfo(("vllm", "serve"), "/health", VLLM_IMAGE, _PYTHON_PROBE),
    "llama.cpp": EngineInfo(
        ("llama-server",),
        "/health",
        LLAMA_CPP_IMAGE,
        ("curl", "-fsS", "http://localhost:{port}/health"),
        failures=(
            ("failed to load model", "the GGUF could not be loaded: check the repo/file names and the download"),
            ("failed to load multimodal projector", "the projector (--mmproj) is missing or does not match"),
            ("cudaMalloc failed", "the GPU ran out of memory: plan for a smaller card or fewer models"),
        ),
    ),
    "transformers": EngineInfo(
        ("transformers", "serve"),
        "/health",
        None,
        _PYTHON_PROBE,
        failures=(("does not have a chat template", "ship a chat template with the processor (chat_template.jinja)"),),
    ),
}


def prepare_server(config: ModelConfig) -> str:
    """Make the model's server ready to start (see prepare_model_dir); its engine's health path."""
    prepare_model_dir(config)
    return ENGINES[str(config.engine)].health_path


def prepare_model_dir(config: ModelConfig, root: Path = PROJECT_ROOT) -> None:
    """Put the config's chat template into the folder `transformers serve` loads (GOT-OCR 2.0 ships none).

    The checkpoint itself must already be there (the hub cannot be reached from every machine that runs `up`).
    """
    serving = config.serving
    if serving is None or serving.model_dir is None:
        return
    folder = root / serving.model_dir
    if not (folder / "config.json").is_file():
        raise LauncherError(
            f"{config.name}: no checkpoint in {folder}; download it first: "
            f"huggingface-cli download {config.hf_repo} --revision {config.revision} --local-dir {folder}"
        )
    if serving.chat_template is not None:
        shutil.copyfile(root / "model_configs" / serving.chat_template, folder / "chat_template.jinja")
