"""`python -m launchers plan`: the card's size, the models to fit, and the plan printed as a table.

The fitting itself (settings per model, fractions, cheapest fixes) is `gateway/models/fitting.py`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Sequence

from gateway.models import memory_model as mm
from gateway.models.fitting import apply_cheapest_fix, plan_models
from gateway.models.memory_plan import Plan
from gateway.models.registry import ConfigError, ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT
from launchers.errors import LauncherError

DEFAULT_MODELS = ("dots-mocr", "paddleocr-vl")  # the 16gb profile's set, for cards no profile matches
_PROFILE_MATCH_GIB = 0.25  # a card within this of a profile's size uses that profile


def detect_gpu_mem_gib() -> float:
    """The first GPU's total memory in GiB, from nvidia-smi."""
    command = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    if shutil.which(command[0]) is None:
        raise LauncherError("--gpu-mem auto needs nvidia-smi, which is not on PATH; give --gpu-mem N (GiB)")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(f"nvidia-smi failed ({exc}); give --gpu-mem N (GiB)") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise LauncherError(f"nvidia-smi failed: {reason[0] if reason else f'exit {done.returncode}'}")
    try:
        mib = float(lines[0].strip())
    except ValueError as exc:
        raise LauncherError(f"nvidia-smi reported {lines[0]!r}, not a size in MiB") from exc
    return mib / 1024


def _gpu_mem(value: str) -> float:
    if value.strip().lower() == "auto":
        return detect_gpu_mem_gib()
    try:
        gib = float(value)
    except ValueError:
        raise LauncherError(f"--gpu-mem must be a size in GiB (e.g. 12, 16, 13.5) or 'auto', got {value!r}") from None
    if not 0 < gib < float("inf"):
        raise LauncherError(f"--gpu-mem must be a positive size in GiB, got {value!r}")
    return gib


def resolve_plan(
    *, profile: str | None, gpu_mem: str | None, models: Sequence[str] | None
) -> tuple[Plan, dict[str, ModelConfig]]:
    """The plan for a profile or a card size (and optional models), and the configs of its models."""
    from launchers.profiles import Profile, load_profile, profile_names

    chosen: Profile | None = load_profile(profile) if profile is not None else None
    gib = _gpu_mem(gpu_mem if gpu_mem is not None else "auto") if gpu_mem or chosen is None else None
    if chosen is None and gib is not None:
        matching = [load_profile(n) for n in profile_names()]
        chosen = next((p for p in matching if abs(p.gpu_mem_gib - gib) <= _PROFILE_MATCH_GIB), None)
    card = gib if gib is not None else chosen.gpu_mem_gib if chosen else 0.0
    names = list(models) if models else list(chosen.models if chosen else DEFAULT_MODELS)
    try:
        registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
    except ConfigError as exc:
        raise LauncherError(str(exc)) from exc
    configs: dict[str, ModelConfig] = {}
    for name in names:
        if name not in registry:
            raise LauncherError(f"unknown model {name!r}; known: {', '.join(sorted(registry))}")
        if name in configs:
            raise LauncherError(f"model {name!r} is named twice")
        config = registry[name]
        if not config.servable:
            raise LauncherError(
                f"{name} has no engine that serves it: {' '.join(str(config.unsupported_reason).split())}"
            )
        configs[name] = config
    overrides = chosen.overrides if chosen else None
    plan = plan_models(
        list(configs.values()), card, headroom_gib=chosen.headroom_gib if chosen else None, overrides=overrides
    )
    return apply_cheapest_fix(list(configs.values()), plan, overrides), configs


def format_plan(plan: Plan) -> str:
    """The plan as a table: one row per model, then the total against the card."""
    head = f"{'model':<16}{'util':>6}{'max_len':>9}{'seqs':>6}{'eager':>7}{'kv':>6}{'quant':>6}{'max_px':>10}"
    head += f"{'weights':>9}{'activ':>7}{'overhd':>8}{'kv GiB':>8}{'total':>8}"
    rows = [head, "-" * len(head)]
    for m in plan.models:
        rows.append(
            f"{m.name:<16}{m.gpu_memory_utilization:>6.2f}{m.max_model_len:>9}{m.max_num_seqs:>6}"
            f"{'yes' if m.enforce_eager else 'no':>7}{m.kv_cache_dtype:>6}{m.quantization or '-':>6}{m.max_pixels:>10}"
            f"{m.weights_gib:>9.2f}{m.activation_gib:>7.2f}{m.overhead_gib:>8.2f}{m.kv_cache_gib:>8.2f}{m.total_gib:>8.2f}"
        )
    needed = sum(mm.footprint_gib(m, plan.gpu_mem_gib) for m in plan.models)
    fractions = sum(m.gpu_memory_utilization for m in plan.models)
    budget = plan.gpu_mem_gib - plan.headroom_gib
    rows.append("-" * len(head))
    rows.append(
        f"card {plan.gpu_mem_gib:.2f} GiB, headroom {plan.headroom_gib:.2f}: needs {needed:.2f} GiB of {budget:.2f} "
        f"(fractions {fractions:.2f} + {mm.CUDA_CONTEXT_GIB} GiB CUDA context per server) "
        f"-> {'fits' if plan.fits else 'DOES NOT FIT'}"
    )
    if plan.applied:
        rows.append(f"applied the cheapest fix that keeps every model: {plan.applied}")
    if not plan.fits:
        rows.append("cheapest fixes:" if plan.fixes else "no change of settings makes this set fit on this card")
        rows.extend(f"  {i}. {fix}" for i, fix in enumerate(plan.fixes, 1))
    return "\n".join(rows)


def run_plan(args: argparse.Namespace) -> int:
    """`python -m launchers plan`: print the plan; exit 0 when it fits, 1 when it does not."""
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    plan, _ = resolve_plan(profile=args.profile, gpu_mem=args.gpu_mem, models=models)
    print(format_plan(plan))
    return 0 if plan.fits else 1
