"""The GPU memory planner against hand-computed figures, the committed profiles, fixes, errors and the CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT
from launchers import memory_model as mm
from launchers.memory_plan import GIB, LauncherError
from launchers.planner import PlanOverrides, find_fixes, plan_models, resolve_plan
from launchers.profiles import load_profile, profile_names

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def configs(*names: str) -> list[ModelConfig]:
    return [REGISTRY[name] for name in names]


# Per model, at its config's settings on a 16 GiB card (activation: max(image tokens, 2048) x 128 KiB;
# overhead: 0.5 context + 0.2 slack + 0.1 + 0.02 x max_num_seqs graphs;
# KV tokens: max_model_len + (max_num_seqs - 1) x max_model_len / 8;
# utilization: (total - 0.5) / 16 rounded up to 0.01).
HAND_COMPUTED = {
    # KV/token 2x28x2x128x2 = 28,672 B. Weights 3.0e9x2x1.02 = 6.12e9 B = 5.6997 GiB.
    # 11,289,600 px / 28² = 14,400 image tokens x 131,072 B = 1.7578 GiB. Overhead 0.5+0.2+0.1+0.16 = 0.96.
    # KV 32,768 + 7x4,096 = 61,440 tokens x 28,672 B = 1.6406 GiB. Total 10.0581 → (9.5581/16 = 0.597) 0.60.
    "dots-ocr": (28_672, 5.6997, 1.7578, 0.96, 1.6406, 10.0581, 0.60),
    # KV/token 2x28x8x128x2 = 114,688 B. Weights 2.1e9x2x1.02 = 4.284e9 B = 3.9898 GiB.
    # 4,194,304 / 32² = 4,096 tokens → 0.5 GiB. KV 16,384 + 7x2,048 = 30,720 x 114,688 B = 3.2813 GiB.
    # Total 8.7311 → (8.2311/16 = 0.514) 0.52.
    "qwen3-vl-2b": (114_688, 3.9898, 0.5, 0.96, 3.2813, 8.7311, 0.52),
    # KV/token 28,672 B. Weights 2.21e9x2x1.02 = 4.5084e9 B = 4.1988 GiB. 1,003,520 / 28² = 1,280 tokens,
    # below the 2,048-token budget → 2,048 x 128 KiB = 0.25 GiB. KV 8,192 + 7x1,024 = 15,360 x 28,672 B =
    # 0.4102 GiB. Total 5.8189 → (5.3189/16 = 0.332) 0.34.
    "qwen2-vl-2b": (28_672, 4.1988, 0.25, 0.96, 0.4102, 5.8189, 0.34),
    # KV/token 2x32x32x96x2 = 393,216 B (384 KiB). Weights 4.15e9x2x1.02 = 8.466e9 B = 7.8846 GiB.
    # 1,806,336 / 28² = 2,304 tokens → 0.2813 GiB. Overhead 0.5+0.2+0.1+0.08 = 0.88.
    # KV 4,096 + 3x512 = 5,632 x 393,216 B = 2.0625 GiB. Total 11.1083 → (10.6083/16 = 0.663) 0.67.
    "phi-3.5-vision": (393_216, 7.8846, 0.2813, 0.88, 2.0625, 11.1083, 0.67),
}


@pytest.mark.parametrize("name", sorted(HAND_COMPUTED))
def test_figures_match_hand_computed_values(name: str) -> None:
    kv_per_token, weights, activation, overhead, kv_cache, total, utilization = HAND_COMPUTED[name]
    model = plan_models(configs(name), 16).models[0]
    assert model.kv_bytes_per_token == kv_per_token
    assert model.weights_gib == pytest.approx(weights, abs=1e-4)
    assert model.activation_gib == pytest.approx(activation, abs=1e-4)
    assert model.overhead_gib == pytest.approx(overhead, abs=1e-9)
    assert model.kv_cache_gib == pytest.approx(kv_cache, abs=1e-4)
    assert model.total_gib == pytest.approx(total, abs=1e-3)
    assert model.gpu_memory_utilization == utilization


def test_unservable_models_have_kv_figures_too() -> None:
    # got-ocr2: 2x24x2x64x2 = 12,288 B; moondream2 (fp16, no GQA): 2x24x32x64x2 = 196,608 B.
    assert mm.kv_bytes_per_token(REGISTRY["got-ocr2"], "auto") == 12_288
    assert mm.kv_bytes_per_token(REGISTRY["moondream2"], "auto") == 196_608


def test_fp8_eager_and_pixels_shrink_what_they_should() -> None:
    small = PlanOverrides(kv_cache_dtype="fp8", enforce_eager=True, max_pixels=11_289_600 // 4)
    model = plan_models(configs("dots-ocr"), 16, overrides={"dots-ocr": small}).models[0]
    assert model.kv_bytes_per_token == 14_336  # 2x28x2x128x1
    assert model.overhead_gib == pytest.approx(0.7)  # no CUDA graphs
    assert model.activation_gib == pytest.approx(3_600 * 128 * 1024 / GIB)  # 2,822,400 px / 784 = 3,600 tokens


def test_dots_page_floor_is_large() -> None:
    # 14,400 image tokens + 512 prompt + 16,384 default answer.
    assert mm.page_floor(REGISTRY["dots-ocr"], 11_289_600) == 31_296


@pytest.mark.parametrize("name", ["12gb", "16gb"])
def test_committed_profiles_fit_with_headroom(name: str) -> None:
    profile = load_profile(name)
    plan, models = resolve_plan(profile=name, gpu_mem=None, models=None)
    assert plan.fits, plan.fixes
    assert list(models) == list(profile.models)
    assert plan.gpu_mem_gib == profile.gpu_mem_gib
    assert (
        sum(m.gpu_memory_utilization for m in plan.models) <= (plan.gpu_mem_gib - plan.headroom_gib) / plan.gpu_mem_gib
    )
    needed = sum(m.gpu_memory_utilization * plan.gpu_mem_gib + mm.CUDA_CONTEXT_GIB for m in plan.models)
    assert needed <= plan.gpu_mem_gib - plan.headroom_gib
    for model in plan.models:  # every model can still take one whole page
        assert model.max_model_len >= mm.page_floor(models[model.name], model.max_pixels)
    # A card that reports a little less than its label (16 GB → 15.99 GiB) still fits.
    lower = plan_models(
        list(models.values()),
        profile.gpu_mem_gib - 0.25,
        headroom_gib=profile.headroom_gib,
        overrides=profile.overrides,
    )
    assert lower.fits


def test_profile_names() -> None:
    assert profile_names() == ["12gb", "16gb"]


def test_twelve_gb_cannot_hold_dots_and_qwen2_so_the_fix_is_a_drop() -> None:
    plan = plan_models(configs("dots-ocr", "qwen2-vl-2b"), 12)
    assert not plan.fits
    assert plan.fixes[0].startswith("drop qwen2-vl-2b")


def test_four_models_on_twelve_gb_do_not_fit_and_the_first_fix_does() -> None:
    names = ("dots-ocr", "qwen3-vl-2b", "qwen2-vl-2b", "phi-3.5-vision")
    plan = plan_models(configs(*names), 12)
    assert not plan.fits
    settings = {c.name: mm.config_settings(c) for c in configs(*names)}
    fixes = find_fixes(configs(*names), settings, 12, plan.headroom_gib)
    assert fixes
    assert plan.fixes == tuple(fix.description for fix in fixes)
    fixed = plan_models(configs(*fixes[0].models), 12, overrides=fixes[0].overrides)
    assert fixed.fits


def test_cheapest_fix_comes_first_and_applies() -> None:
    # qwen3 alone on a 9 GiB card: 8.73 GiB does not fit in 8; fewer sequences (the cheapest kind) do.
    plan = plan_models(configs("qwen3-vl-2b"), 9)
    assert not plan.fits
    assert plan.fixes[0].startswith("lower max_num_seqs: qwen3-vl-2b: max_num_seqs 8→")
    config = REGISTRY["qwen3-vl-2b"]
    fix = find_fixes([config], {config.name: mm.config_settings(config)}, 9, plan.headroom_gib)[0]
    assert plan_models([config], 9, overrides=fix.overrides).fits


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": None, "gpu_mem": "16", "models": ["nope"]}, "unknown model 'nope'"),
        ({"profile": None, "gpu_mem": "16", "models": ["got-ocr2"]}, "got-ocr2 cannot be served by vLLM"),
        ({"profile": None, "gpu_mem": "-3", "models": None}, "positive"),
        ({"profile": None, "gpu_mem": "abc", "models": None}, "must be a size in GiB"),
        ({"profile": "8gb", "gpu_mem": None, "models": None}, "no profile '8gb'"),
        ({"profile": None, "gpu_mem": "16", "models": ["dots-ocr", "dots-ocr"]}, "named twice"),
    ],
)
def test_resolve_plan_errors_are_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LauncherError, match=message) as caught:
        resolve_plan(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_gpu_mem_without_models_uses_the_matching_profile_else_the_default_pair() -> None:
    plan, models = resolve_plan(profile=None, gpu_mem="16", models=None)
    assert list(models) == list(load_profile("16gb").models)
    assert plan.model("dots-ocr").max_pixels == load_profile("16gb").overrides["dots-ocr"].max_pixels
    plan, models = resolve_plan(profile=None, gpu_mem="24", models=None)
    assert list(models) == ["dots-ocr", "qwen3-vl-2b"]
    assert plan.fits


def _fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_auto_reads_the_first_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, "echo 16376\necho 24576\n")  # a "16 GB" card reports 15.99 GiB
    plan, models = resolve_plan(profile=None, gpu_mem="auto", models=None)
    assert plan.gpu_mem_gib == pytest.approx(16376 / 1024)
    assert list(models) == list(load_profile("16gb").models)
    assert plan.fits


def test_auto_with_a_failing_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    with pytest.raises(LauncherError, match="nvidia-smi failed: NVIDIA-SMI has failed"):
        resolve_plan(profile=None, gpu_mem="auto", models=None)


def test_auto_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LauncherError, match="needs nvidia-smi"):
        resolve_plan(profile=None, gpu_mem="auto", models=None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launchers", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )


def test_cli_plan_profile_16gb_fits() -> None:
    done = _cli("plan", "--profile", "16gb")
    assert done.returncode == 0, done.stderr
    assert "dots-ocr" in done.stdout
    assert "qwen3-vl-2b" in done.stdout
    assert "-> fits" in done.stdout


def test_cli_plan_that_does_not_fit_exits_1_with_the_fix() -> None:
    done = _cli("plan", "--gpu-mem", "12", "--models", "dots-ocr,qwen2-vl-2b")
    assert done.returncode == 1
    assert "DOES NOT FIT" in done.stdout
    assert "1. drop qwen2-vl-2b" in done.stdout


def test_cli_plan_bad_gpu_mem_exits_2_in_one_line() -> None:
    done = _cli("plan", "--gpu-mem", "abc")
    assert done.returncode == 2
    assert done.stderr.startswith("launchers: --gpu-mem must be")
