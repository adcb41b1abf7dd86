"""Each model's server argv, from its config (`model_configs/*.yaml`) and its share of the card (`ModelPlan`).

The engine (`engine:` in the config) decides the argv's shape: `vllm serve`, `llama-server` or `transformers
serve` (launchers/engines.py). Everything model-specific is data in the config: the processor kwargs
(`serving.mm_processor_kwargs`, whose "{min_pixels}"/"{max_pixels}" placeholders are filled from the image policy
as the plan caps it) and the extra flags (`serving.extra_args`). The supervisor (`up`) and the compose files both
build their commands here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import JsonValue

from gateway.models.memory_plan import ModelPlan, Plan
from gateway.models.registry import ModelConfig
from launchers.engines import ENGINES, VLLM_IMAGE, VLLM_VERSION
from launchers.errors import LauncherError

__all__ = ["VLLM_IMAGE", "VLLM_VERSION", "serve_args", "server_command"]
# llama-server offloads every layer to the GPU with a layer count at least the model's.
_ALL_LAYERS = "999"

# One image per prompt and no video: the gateway sends one page at a time, and video would enlarge the
# profiling reserve. JSON, since vLLM rejects the legacy `image=1,video=0` form (vllm#39687).
LIMIT_MM_PER_PROMPT = {"image": 1, "video": 0}

# vLLM fetches http(s) media URLs in a request itself unless told which domains it may fetch from; with a list,
# any other host is refused (exact host match, vLLM >= 0.11, `--allowed-media-domains`). The gateway only ever
# sends images inline (data: URLs) and refuses content parts it has not vetted, so the list names one host
# that cannot exist (RFC 6761 reserves `.invalid`): defence in depth should a URL ever slip through.
# (An empty list would mean "any domain" to vLLM.)
NO_MEDIA_DOMAIN = "media-fetching-disabled.invalid"

# Flags serve_args sets itself; `serving.extra_args` may not repeat them.
_MANAGED_FLAGS = frozenset(
    {
        "--model",
        "--revision",
        "--served-model-name",
        "--host",
        "--port",
        "--gpu-memory-utilization",
        "--max-model-len",
        "--max-num-seqs",
        "--limit-mm-per-prompt",
        "--allowed-media-domains",
        "--mm-processor-kwargs",
        "--trust-remote-code",
        "--enforce-eager",
        "--kv-cache-dtype",
        "--quantization",
        # llama-server's
        "-hf",
        "--alias",
        "--ctx-size",
        "--parallel",
        "--n-gpu-layers",
    }
)


def serve_args(config: ModelConfig, plan: ModelPlan, *, host: str, port: int) -> list[str]:
    """The arguments after the engine's executable (also what follows the image name in a container's command)."""
    serving = config.serving
    if config.engine is None or serving is None:
        raise LauncherError(f"{config.name} has no engine that serves it: {config.unsupported_reason or 'no serving'}")
    if plan.name != config.name:
        raise LauncherError(f"the plan for {plan.name!r} was given with the config of {config.name!r}")
    clashes = sorted({arg.split("=", 1)[0] for arg in serving.extra_args} & _MANAGED_FLAGS)
    if clashes:
        raise LauncherError(f"{config.name}: serving.extra_args repeats flags the launchers set: {', '.join(clashes)}")
    if config.engine == "llama.cpp":
        args = _llama_server_args(config, plan, host=host, port=port)
    elif config.engine == "transformers":
        source = serving.model_dir or config.hf_repo
        args = [source, "--host", host, "--port", str(port), "--max-model-len", str(plan.max_model_len)]
    else:
        args = _vllm_args(config, plan, host=host, port=port)
    return args + list(serving.extra_args)


def _vllm_args(config: ModelConfig, plan: ModelPlan, *, host: str, port: int) -> list[str]:
    assert config.serving is not None
    args = [config.hf_repo, "--revision", config.revision, "--served-model-name", config.name]
    args += ["--host", host, "--port", str(port)]
    args += ["--gpu-memory-utilization", f"{plan.gpu_memory_utilization:.2f}"]
    args += ["--max-model-len", str(plan.max_model_len), "--max-num-seqs", str(plan.max_num_seqs)]
    args += ["--limit-mm-per-prompt", _json(LIMIT_MM_PER_PROMPT)]
    args += ["--allowed-media-domains", NO_MEDIA_DOMAIN]
    if config.serving.mm_processor_kwargs:
        args += ["--mm-processor-kwargs", _json(mm_processor_kwargs(config, plan))]
    if config.serving.trust_remote_code:
        args.append("--trust-remote-code")
    if plan.enforce_eager:
        args.append("--enforce-eager")
    if plan.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", plan.kv_cache_dtype]
    if plan.quantization is not None:
        args += ["--quantization", plan.quantization]
    return args


def _llama_server_args(config: ModelConfig, plan: ModelPlan, *, host: str, port: int) -> list[str]:
    """llama-server: the GGUF and its projector from the repo, every layer on the GPU, one slot per sequence.

    Its context (-c) is shared by the slots (--parallel), so each slot gets max_model_len.
    """
    args = ["-hf", config.hf_repo, "--alias", config.name, "--host", host, "--port", str(port)]
    args += ["--ctx-size", str(plan.max_model_len * plan.max_num_seqs), "--parallel", str(plan.max_num_seqs)]
    return [*args, "--n-gpu-layers", _ALL_LAYERS]


def server_command(config: ModelConfig, plan: ModelPlan, *, host: str, port: int) -> list[str]:
    """The whole command: the engine's executable and the arguments (`vllm serve ...`, `llama-server ...`)."""
    if config.engine is None:
        raise LauncherError(f"{config.name} has no engine that serves it: {config.unsupported_reason}")
    return [*ENGINES[config.engine].executable, *serve_args(config, plan, host=host, port=port)]


def served_max_pixels(config: ModelConfig, plan: ModelPlan) -> int:
    """The per-image pixel cap the server runs with: the plan's, never above the config's.

    The gateway must resize pages to the same cap (GATEWAY_MODEL_MAX_PIXELS), or vLLM resizes them again and
    dots.ocr's boxes no longer map to the client's pixels.
    """
    if plan.max_pixels < config.image.min_pixels:
        raise LauncherError(
            f"the plan caps {config.name}'s images at {plan.max_pixels} pixels, below its minimum "
            f"{config.image.min_pixels}"
        )
    return min(plan.max_pixels, config.image.max_pixels)


def lowered_pixel_caps(plan: Plan, configs: Mapping[str, ModelConfig]) -> dict[str, int]:
    """GATEWAY_MODEL_MAX_PIXELS for a plan: the models whose served cap the plan lowered below their config's."""
    caps = {model.name: served_max_pixels(configs[model.name], model) for model in plan.models}
    return {name: cap for name, cap in caps.items() if cap < configs[name].image.max_pixels}


def mm_processor_kwargs(config: ModelConfig, plan: ModelPlan) -> dict[str, JsonValue]:
    """The config's processor kwargs with the pixel placeholders filled in (max: the plan's cap), in the units the
    processor compares them with (`serving.mm_pixel_frames` times the policy's h · w pixels)."""
    max_pixels = served_max_pixels(config, plan)
    frames = config.serving.mm_pixel_frames if config.serving else 1
    values: dict[str, JsonValue] = {
        "{min_pixels}": config.image.min_pixels * frames,
        "{max_pixels}": max_pixels * frames,
    }

    def fill(value: JsonValue) -> JsonValue:
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, str):
            return values.get(value, value)
        return value

    kwargs = config.serving.mm_processor_kwargs if config.serving else {}
    return {key: fill(value) for key, value in kwargs.items()}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
