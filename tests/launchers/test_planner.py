"""The GPU memory planner against hand-computed figures, the committed profiles, fixes, errors and the CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.models import memory_model as mm
from gateway.models.fitting import plan_models
from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT
from launchers.errors import LauncherError
from launchers.planner import resolve_plan
from launchers.profiles import load_profile, profile_names

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def configs(*names: str) -> list[ModelConfig]:
    return [REGISTRY[name] for name in names]


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": None, "gpu_mem": "16", "models": ["nope"]}, "unknown model 'nope'"),
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
    assert list(models) == list(load_profile("16gb").models) == ["dots-mocr", "paddleocr-vl"]
    assert plan.applied is None  # both at their own settings: nothing lossy on the committed profiles
    plan, models = resolve_plan(profile=None, gpu_mem="24", models=None)
    assert list(models) == ["dots-mocr", "paddleocr-vl"]
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
    assert "dots-mocr" in done.stdout
    assert "paddleocr-vl" in done.stdout
    assert "-> fits" in done.stdout
    assert "applied" not in done.stdout


def test_cli_plan_applies_the_cheapest_fix_that_keeps_every_model() -> None:
    # dots-ocr + qwen2-vl-2b need 16 GiB of 11 at their own settings; fp8 weights (lossy) make them fit.
    done = _cli("plan", "--gpu-mem", "12", "--models", "dots-ocr,qwen2-vl-2b")
    assert done.returncode == 0, done.stdout
    assert "-> fits" in done.stdout
    assert "applied the cheapest fix that keeps every model: together:" in done.stdout
    assert "quantization None→fp8" in done.stdout


def test_cli_plan_that_does_not_fit_exits_1_with_the_fix() -> None:
    # phi-3.5-vision's 7.9 GiB of weights and 384 KiB of KV per token leave no room beside dots-ocr on 12 GB.
    done = _cli("plan", "--gpu-mem", "12", "--models", "dots-ocr,phi-3.5-vision")
    assert done.returncode == 1
    assert "DOES NOT FIT" in done.stdout
    assert "1. drop phi-3.5-vision" in done.stdout


def test_cli_plan_bad_gpu_mem_exits_2_in_one_line() -> None:
    done = _cli("plan", "--gpu-mem", "abc")
    assert done.returncode == 2
    assert done.stderr.startswith("launchers: --gpu-mem must be")
