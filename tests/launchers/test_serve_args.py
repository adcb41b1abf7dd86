"""`vllm serve` argv per model and plan: snapshots, valid JSON, no repeated flag, config errors named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.models.memory_plan import ModelPlan
from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT
from launchers.engines import prepare_model_dir
from launchers.errors import LauncherError
from launchers.serve_args import VLLM_IMAGE, VLLM_VERSION, serve_args, server_command

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
SERVABLE = sorted(name for name, config in REGISTRY.items() if config.engine == "vllm")


def _plan(name: str, u: float, max_model_len: int, seqs: int, eager: bool, kv: str, max_pixels: int) -> ModelPlan:
    return ModelPlan(
        name=name,
        gpu_memory_utilization=u,
        max_model_len=max_model_len,
        max_num_seqs=seqs,
        enforce_eager=eager,
        kv_cache_dtype="fp8" if kv == "fp8" else "auto",
        max_pixels=max_pixels,
        weights_gib=1.0,
        activation_gib=1.0,
        overhead_gib=1.0,
        kv_bytes_per_token=1,
        kv_cache_gib=1.0,
    )


# 16 GB-like: the configs' own lengths and pixel caps, CUDA graphs on, bf16 KV.
PLANS_16GB = {
    "dots-ocr": _plan("dots-ocr", 0.40, 32768, 8, False, "auto", 11289600),
    "qwen3-vl-2b": _plan("qwen3-vl-2b", 0.25, 16384, 8, False, "auto", 4194304),
    "qwen2-vl-2b": _plan("qwen2-vl-2b", 0.15, 8192, 8, False, "auto", 1003520),
    "phi-3.5-vision": _plan("phi-3.5-vision", 0.5, 4096, 4, False, "auto", 1806336),
}
# 12 GB-like: shorter contexts, lower pixel caps, eager mode, fp8 KV where it pays.
PLANS_12GB = {
    "dots-ocr": _plan("dots-ocr", 0.555, 24576, 4, True, "auto", 6272000),
    "qwen3-vl-2b": _plan("qwen3-vl-2b", 0.3, 8192, 4, True, "fp8", 2097152),
    "qwen2-vl-2b": _plan("qwen2-vl-2b", 0.2, 8192, 4, True, "auto", 1003520),
    "phi-3.5-vision": _plan("phi-3.5-vision", 0.75, 2048, 2, True, "fp8", 1806336),
}

COMMON = ["--host", "127.0.0.1"]
LIMIT = ["--limit-mm-per-prompt", '{"image":1,"video":0}', "--allowed-media-domains", "media-fetching-disabled.invalid"]
DOTS_EXTRA = ["--chat-template-content-format", "string", "--no-enable-prefix-caching", "--mm-processor-cache-gb", "0"]
EXPECTED_16GB = {
    "dots-ocr": [
        "rednote-hilab/dots.ocr", "--revision", "main", "--served-model-name", "dots-ocr", *COMMON, "--port", "8101",
        "--gpu-memory-utilization", "0.40", "--max-model-len", "32768", "--max-num-seqs", "8", *LIMIT,
        "--mm-processor-kwargs", '{"size":{"longest_edge":11289600,"shortest_edge":3136}}', "--trust-remote-code",
        *DOTS_EXTRA,
    ],
    "qwen3-vl-2b": [
        "Qwen/Qwen3-VL-2B-Instruct", "--revision", "main", "--served-model-name", "qwen3-vl-2b", *COMMON,
        "--port", "8102", "--gpu-memory-utilization", "0.25", "--max-model-len", "16384", "--max-num-seqs", "8",
        *LIMIT, "--mm-processor-kwargs", '{"size":{"longest_edge":4194304,"shortest_edge":4096}}',
    ],
    "qwen2-vl-2b": [
        "Qwen/Qwen2-VL-2B-Instruct", "--revision", "main", "--served-model-name", "qwen2-vl-2b", *COMMON,
        "--port", "8103", "--gpu-memory-utilization", "0.15", "--max-model-len", "8192", "--max-num-seqs", "8",
        *LIMIT, "--mm-processor-kwargs", '{"size":{"longest_edge":1003520,"shortest_edge":3136}}',
    ],
    "phi-3.5-vision": [
        "microsoft/Phi-3.5-vision-instruct", "--revision", "main", "--served-model-name", "phi-3.5-vision", *COMMON,
        "--port", "8104", "--gpu-memory-utilization", "0.50", "--max-model-len", "4096", "--max-num-seqs", "4",
        *LIMIT, "--mm-processor-kwargs", '{"num_crops":16}', "--trust-remote-code",
    ],
}  # fmt: skip
EXPECTED_12GB = {
    "dots-ocr": [
        "rednote-hilab/dots.ocr", "--revision", "main", "--served-model-name", "dots-ocr", *COMMON, "--port", "8101",
        "--gpu-memory-utilization", "0.56", "--max-model-len", "24576", "--max-num-seqs", "4", *LIMIT,
        "--mm-processor-kwargs", '{"size":{"longest_edge":6272000,"shortest_edge":3136}}', "--trust-remote-code",
        "--enforce-eager", *DOTS_EXTRA,
    ],
    "qwen3-vl-2b": [
        "Qwen/Qwen3-VL-2B-Instruct", "--revision", "main", "--served-model-name", "qwen3-vl-2b", *COMMON,
        "--port", "8102", "--gpu-memory-utilization", "0.30", "--max-model-len", "8192", "--max-num-seqs", "4",
        *LIMIT, "--mm-processor-kwargs", '{"size":{"longest_edge":2097152,"shortest_edge":4096}}',
        "--enforce-eager", "--kv-cache-dtype", "fp8",
    ],
    "qwen2-vl-2b": [
        "Qwen/Qwen2-VL-2B-Instruct", "--revision", "main", "--served-model-name", "qwen2-vl-2b", *COMMON,
        "--port", "8103", "--gpu-memory-utilization", "0.20", "--max-model-len", "8192", "--max-num-seqs", "4",
        *LIMIT, "--mm-processor-kwargs", '{"size":{"longest_edge":1003520,"shortest_edge":3136}}', "--enforce-eager",
    ],
    "phi-3.5-vision": [
        "microsoft/Phi-3.5-vision-instruct", "--revision", "main", "--served-model-name", "phi-3.5-vision", *COMMON,
        "--port", "8104", "--gpu-memory-utilization", "0.75", "--max-model-len", "2048", "--max-num-seqs", "2",
        *LIMIT, "--mm-processor-kwargs", '{"num_crops":16}', "--trust-remote-code", "--enforce-eager",
        "--kv-cache-dtype", "fp8",
    ],
}  # fmt: skip


def _args(name: str, plan: ModelPlan) -> list[str]:
    config = REGISTRY[name]
    assert config.serving is not None
    return serve_args(config, plan, host="127.0.0.1", port=config.serving.port)


SNAPSHOTS = sorted(EXPECTED_16GB)


def test_snapshots_cover_the_first_four_vllm_models() -> None:
    assert set(SNAPSHOTS) <= set(SERVABLE)
    assert sorted(EXPECTED_12GB) == SNAPSHOTS


@pytest.mark.parametrize("name", SNAPSHOTS)
@pytest.mark.parametrize(("plans", "expected"), [(PLANS_16GB, EXPECTED_16GB), (PLANS_12GB, EXPECTED_12GB)])
def test_argv_snapshot(name: str, plans: dict[str, ModelPlan], expected: dict[str, list[str]]) -> None:
    assert _args(name, plans[name]) == expected[name]


def _config_plan(name: str) -> ModelPlan:
    config = REGISTRY[name]
    assert config.serving is not None
    return _plan(name, 0.3, config.serving.max_model_len, 2, False, "auto", config.image.max_pixels)


@pytest.mark.parametrize("name", SERVABLE)
def test_json_flags_parse_and_no_flag_repeats(name: str) -> None:
    args = _args(name, _config_plan(name))
    flags = [arg for arg in args if arg.startswith("--")]
    assert len(flags) == len(set(flags)), flags
    for flag in ("--limit-mm-per-prompt", "--mm-processor-kwargs", "--speculative-config"):
        if flag in args:
            assert isinstance(json.loads(args[args.index(flag) + 1]), dict)
    assert not any("image=" in arg for arg in args), "the legacy key=value syntax is rejected by vLLM"
    assert args[0] == REGISTRY[name].hf_repo


def test_pixel_placeholders_follow_the_plan_cap_and_never_exceed_the_config() -> None:
    config = REGISTRY["qwen2-vl-2b"]
    tiny = _plan("qwen2-vl-2b", 0.2, 8192, 4, True, "auto", 1000)
    with pytest.raises(LauncherError, match="below its minimum 3136"):
        _args("qwen2-vl-2b", tiny)
    huge = _plan("qwen2-vl-2b", 0.2, 8192, 4, True, "auto", 10**9)
    kwargs = json.loads(_args("qwen2-vl-2b", huge)[_args("qwen2-vl-2b", huge).index("--mm-processor-kwargs") + 1])
    assert kwargs["size"]["longest_edge"] == config.image.max_pixels


def test_pixel_bounds_go_out_in_the_units_the_processor_compares_them_in() -> None:
    # GLM-OCR's processor keeps temporal_patch_size · h · w = 2 · h · w within `size`: the policy's h · w bounds,
    # the plan's lowered cap included, go out doubled, or vLLM sizes its encoder cache for half the pages' pixels.
    config = REGISTRY["glm-ocr"]
    args = _args("glm-ocr", _plan("glm-ocr", 0.3, 8192, 2, False, "auto", 1_003_520))
    kwargs = json.loads(args[args.index("--mm-processor-kwargs") + 1])
    assert kwargs == {"size": {"shortest_edge": 2 * config.image.min_pixels, "longest_edge": 2 * 1_003_520}}
    qwen = _args("qwen2-vl-2b", _plan("qwen2-vl-2b", 0.3, 8192, 2, False, "auto", 1_003_520))
    assert json.loads(qwen[qwen.index("--mm-processor-kwargs") + 1])["size"]["longest_edge"] == 1_003_520


def test_vllm_command_and_pinned_version() -> None:
    plan = PLANS_16GB["qwen2-vl-2b"]
    command = server_command(REGISTRY["qwen2-vl-2b"], plan, host="0.0.0.0", port=8000)
    assert command[:3] == ["vllm", "serve", "Qwen/Qwen2-VL-2B-Instruct"]
    assert command[command.index("--port") + 1] == "8000"
    assert VLLM_IMAGE.endswith(f":v{VLLM_VERSION}")
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert f'"vllm=={VLLM_VERSION}"' in pyproject


def _with_serving(config: ModelConfig, **changes: object) -> ModelConfig:
    assert config.serving is not None
    return config.model_copy(update={"serving": config.serving.model_copy(update=changes)})


def test_refuses_unservable_models_mismatched_plans_and_repeated_flags() -> None:
    unserved = REGISTRY["got-ocr2"].model_copy(update={"engine": None, "unsupported_reason": "none", "serving": None})
    with pytest.raises(LauncherError, match="has no engine that serves it"):
        serve_args(unserved, PLANS_16GB["dots-ocr"], host="h", port=1)
    with pytest.raises(LauncherError, match="config of 'qwen2-vl-2b'"):
        serve_args(REGISTRY["qwen2-vl-2b"], PLANS_16GB["dots-ocr"], host="h", port=1)
    clashing = _with_serving(REGISTRY["qwen2-vl-2b"], extra_args=["--max-model-len=4096"])
    with pytest.raises(LauncherError, match="--max-model-len"):
        serve_args(clashing, PLANS_16GB["qwen2-vl-2b"], host="h", port=1)


def test_registry_keeps_processor_kwargs_in_one_place() -> None:
    from gateway.models.registry import Serving

    with pytest.raises(ValueError, match="mm_processor_kwargs"):
        Serving(port=1, max_model_len=1, max_num_seqs=1, extra_args=["--mm-processor-kwargs", "{}"])
    with pytest.raises(ValueError, match="unknown placeholder"):
        Serving(port=1, max_model_len=1, max_num_seqs=1, mm_processor_kwargs={"max_pixels": "{max_pixel}"})


@pytest.mark.parametrize("name", SERVABLE)
def test_vllm_is_told_to_fetch_no_media_url_itself(name: str) -> None:
    # Defence in depth behind the gateway's own part checks: vLLM refuses a URL whose host is not on this list,
    # and the only host on it is under the reserved `.invalid` top-level domain.
    args = _args(name, _config_plan(name))
    domains = args[args.index("--allowed-media-domains") + 1 :]
    first = domains[0]
    assert first.endswith(".invalid")
    assert not any(arg.startswith("http") for arg in domains)


DEEPSEEK_PROCESSOR = "vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor"


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        (
            "deepseek-ocr-2",
            ["--logits_processors", "vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor"],
        ),
        ("deepseek-ocr-2", ["--no-enable-prefix-caching", "--mm-processor-cache-gb", "0", "--trust-remote-code"]),
        ("paddleocr-vl", ["--trust-remote-code", "--max-num-batched-tokens", "16384", "--no-enable-prefix-caching"]),
        ("glm-ocr", ["--speculative-config", '{"method":"mtp","num_speculative_tokens":3}']),
        ("lightonocr", ["--mm-processor-cache-gb", "0", "--no-enable-prefix-caching"]),
        ("dots-mocr", ["--trust-remote-code", "--chat-template-content-format", "string"]),
        ("moondream3", ["--tokenizer", "moondream/starmie-v1"]),  # the checkpoint has no tokenizer files
    ],
)
def test_new_models_carry_their_recipes_flags(name: str, recipe: list[str]) -> None:
    args = _args(name, _config_plan(name))
    for flag in recipe:
        assert flag in args, (flag, args)
    assert "--trust-remote-code" not in args or REGISTRY[name].serving.trust_remote_code  # type: ignore[union-attr]


def test_fp8_weights_become_the_quantization_flag() -> None:
    plan = replace(_config_plan("qwen2-vl-2b"), quantization="fp8", kv_cache_dtype="fp8")
    args = _args("qwen2-vl-2b", plan)
    assert args[args.index("--quantization") + 1] == "fp8"
    assert args[args.index("--kv-cache-dtype") + 1] == "fp8"


def test_llama_server_gets_the_gguf_repo_an_alias_and_one_slot_per_sequence() -> None:
    plan = _plan("moondream2", 0.3, 2048, 2, False, "auto", 142884)
    command = server_command(REGISTRY["moondream2"], plan, host="127.0.0.1", port=8105)
    assert command == [
        "llama-server", "-hf", "ggml-org/moondream2-20250414-GGUF", "--alias", "moondream2",
        "--host", "127.0.0.1", "--port", "8105", "--ctx-size", "4096", "--parallel", "2", "--n-gpu-layers", "999",
    ]  # fmt: skip


def test_transformers_serve_loads_the_prepared_folder_with_its_template_kwargs() -> None:
    plan = _plan("got-ocr2", 0.2, 8192, 1, False, "auto", 1048576)
    command = server_command(REGISTRY["got-ocr2"], plan, host="127.0.0.1", port=8106)
    assert command == [
        "transformers", "serve", "models/got-ocr2", "--host", "127.0.0.1", "--port", "8106",
        "--max-model-len", "8192", "--chat-template-kwargs", '{"multi_page": true}',
    ]  # fmt: skip


def test_the_model_folder_gets_the_chat_template_and_a_missing_checkpoint_says_how(tmp_path: Path) -> None:
    config = REGISTRY["got-ocr2"]
    (tmp_path / "model_configs").symlink_to(PROJECT_ROOT / "model_configs")
    with pytest.raises(LauncherError, match=r"huggingface-cli download stepfun-ai/GOT-OCR-2\.0-hf"):
        prepare_model_dir(config, tmp_path)
    folder = tmp_path / "models" / "got-ocr2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    prepare_model_dir(config, tmp_path)
    template = (folder / "chat_template.jinja").read_text()
    assert "<img><imgpad></img>" in template
