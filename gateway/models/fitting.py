"""Fitting models on one card: which settings let a set of vLLM servers share one card, and their fractions.

The arithmetic per server, its constants and their sources are in `gateway/models/memory_model.py`. This module
applies it to a set of models and checks the sum against the card. When the set does not fit, it searches
for the cheapest changes that would make it fit, in the order a user minds least. Each change is tried on
every model of the set. The lossless ones come first (the answers stay the same; only throughput or the
longest request changes):
  1. fewer concurrent sequences (max_num_seqs 4, 2, 1)
  2. a shorter context (max_model_len halved, never below one page: see memory_model's page floor)
  3. --enforce-eager (no CUDA graphs: slower decoding)
then the lossy ones, each marked "lossy" with the cards that run it:
  4. an fp8 KV cache (--kv-cache-dtype fp8: halves the KV cache)
  5. fp8 weights (--quantization fp8: the language model at one byte a parameter)
  6. a lower pixel cap (max_pixels halved, then quartered: lower resolution, worse OCR)
then all of 1-6 together, then dropping a model. Steps 3-5 are vLLM flags and leave other engines' settings
as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from gateway.models import memory_model as mm
from gateway.models.memory_plan import ModelPlan, Plan, PlanError
from gateway.models.registry import ModelConfig


@dataclass(frozen=True)
class PlanOverrides:
    """Settings that replace a model config's own for one plan (None keeps the config's)."""

    max_model_len: int | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool | None = None
    kv_cache_dtype: Literal["auto", "fp8"] | None = None
    max_pixels: int | None = None
    quantization: Literal["fp8"] | None = None


@dataclass(frozen=True)
class Fix:
    """A change that makes a set fit: new settings per model and/or models dropped."""

    description: str
    overrides: dict[str, PlanOverrides]
    models: tuple[str, ...]
    lossy: bool = False  # changes what the model answers (fp8, fewer pixels), not only speed or capacity


def _settings(config: ModelConfig, overrides: PlanOverrides | None) -> mm.ServerSettings:
    settings = mm.config_settings(config)
    if overrides is None:
        return settings
    changes = {key: value for key, value in vars(overrides).items() if value is not None}
    return replace(settings, **changes)


def _overrides(settings: mm.ServerSettings) -> PlanOverrides:
    return PlanOverrides(**vars(settings))


def _fits(models: Sequence[ModelPlan], gpu_mem_gib: float, headroom_gib: float) -> bool:
    needed = sum(mm.footprint_gib(model, gpu_mem_gib) for model in models)
    return needed <= gpu_mem_gib - headroom_gib + 1e-9


def plan_models(
    configs: Sequence[ModelConfig],
    gpu_mem_gib: float,
    *,
    headroom_gib: float | None = None,
    overrides: Mapping[str, PlanOverrides] | None = None,
) -> Plan:
    """Each model's settings and fraction on a card of `gpu_mem_gib`; the cheapest fixes when they do not fit."""
    if gpu_mem_gib <= 0:
        raise PlanError(f"GPU memory must be positive, got {gpu_mem_gib}")
    headroom = mm.default_headroom_gib(gpu_mem_gib) if headroom_gib is None else headroom_gib
    settings = {c.name: _settings(c, (overrides or {}).get(c.name)) for c in configs}
    models = tuple(mm.model_plan(c, settings[c.name], gpu_mem_gib) for c in configs)
    if _fits(models, gpu_mem_gib, headroom):
        return Plan(gpu_mem_gib=gpu_mem_gib, headroom_gib=headroom, models=models, fits=True)
    fixes = find_fixes(configs, settings, gpu_mem_gib, headroom)
    return Plan(gpu_mem_gib, headroom, models, fits=False, fixes=tuple(fix.description for fix in fixes))


Step = Callable[[ModelConfig, mm.ServerSettings], mm.ServerSettings]


def _seqs(target: int) -> Step:
    return lambda c, s: replace(s, max_num_seqs=min(s.max_num_seqs, target))


def _shorter(divisor: int) -> Step:
    def step(config: ModelConfig, s: mm.ServerSettings) -> mm.ServerSettings:
        floor = min(s.max_model_len, mm.page_floor(config, s.max_pixels))
        shorter = -(-s.max_model_len // divisor // 1024) * 1024  # rounded up to 1k
        return replace(s, max_model_len=max(floor, shorter))

    return step


def _fewer_pixels(divisor: int) -> Step:
    return lambda c, s: replace(s, max_pixels=max(c.image.min_pixels, s.max_pixels // divisor))


def _vllm_only(change: Callable[[mm.ServerSettings], mm.ServerSettings]) -> Step:
    """A vLLM flag: other engines (llama-server) keep their settings."""
    return lambda c, s: change(s) if c.engine == "vllm" else s


_EAGER = _vllm_only(lambda s: replace(s, enforce_eager=True))
_FP8_KV = _vllm_only(lambda s: replace(s, kv_cache_dtype="fp8"))
_FP8_WEIGHTS = _vllm_only(lambda s: replace(s, quantization="fp8"))
# Which cards run the fp8 fixes (vllm.md §1.2, §2.2), quoted in the fix so the user can judge it.
FP8_KV_CARDS = "native on compute capability >= 8.9 (Ada, Hopper, Blackwell); elsewhere the attention backend decides"
FP8_WEIGHT_CARDS = "W8A8 on compute capability >= 8.9 (Ada, Hopper, Blackwell); Ampere runs W8A16 via Marlin"
# (what the user gives up, the settings to try from mildest to strongest), cheapest first; lossless first.
_LADDERS: tuple[tuple[str, tuple[Step, ...]], ...] = (
    ("lower max_num_seqs", (_seqs(4), _seqs(2), _seqs(1))),
    ("lower max_model_len", tuple(_shorter(d) for d in (2, 4, 8, 16, 32))),
    ("use --enforce-eager (slower decoding)", (_EAGER,)),
    (f"lossy: use an fp8 KV cache, --kv-cache-dtype fp8 ({FP8_KV_CARDS})", (_FP8_KV,)),
    (f"lossy: fp8 weights, --quantization fp8 ({FP8_WEIGHT_CARDS})", (_FP8_WEIGHTS,)),
    ("lossy: lower max_pixels (less detail per image)", (_fewer_pixels(2), _fewer_pixels(4))),
)


def _describe(configs: Sequence[ModelConfig], before: dict[str, mm.ServerSettings], after: dict[str, ModelPlan]) -> str:
    changes = []
    for config in configs:
        old, new = before[config.name], after[config.name]
        diffs = [
            f"{field} {getattr(old, field)}→{getattr(new, field)}"
            for field in (
                "max_num_seqs",
                "max_model_len",
                "enforce_eager",
                "kv_cache_dtype",
                "quantization",
                "max_pixels",
            )
            if getattr(old, field) != getattr(new, field)
        ]
        if diffs:
            changes.append(f"{config.name}: {', '.join(diffs)}")
    return "; ".join(changes)


def _try(
    configs: Sequence[ModelConfig],
    settings: dict[str, mm.ServerSettings],
    gpu_mem_gib: float,
    headroom_gib: float,
) -> dict[str, ModelPlan] | None:
    plans = {c.name: mm.model_plan(c, settings[c.name], gpu_mem_gib) for c in configs}
    return plans if _fits(list(plans.values()), gpu_mem_gib, headroom_gib) else None


def _total(plans: Mapping[str, ModelPlan], gpu_mem_gib: float) -> float:
    return sum(mm.footprint_gib(p, gpu_mem_gib) for p in plans.values())


# Settings given back after a combined fix, in the order the user misses them most: detail and exact weights
# first, then speed, context and concurrency.
_RELAX_ORDER = ("max_pixels", "quantization", "kv_cache_dtype", "enforce_eager", "max_model_len", "max_num_seqs")


def _relax(
    configs: Sequence[ModelConfig],
    base: Mapping[str, mm.ServerSettings],
    combined: dict[str, mm.ServerSettings],
    gpu_mem_gib: float,
    headroom_gib: float,
) -> dict[str, mm.ServerSettings]:
    """Undo each change of a combined fix that the set does not need (it must still fit without it)."""
    relaxed = dict(combined)
    for field in _RELAX_ORDER:
        for config in configs:
            original = getattr(base[config.name], field)
            candidates = [original]
            if field == "max_num_seqs":  # some concurrency back is better than none
                candidates += [n for n in (4, 2) if n < original]
            for value in candidates:
                trial = {**relaxed, config.name: replace(relaxed[config.name], **{field: value})}
                if _try(configs, trial, gpu_mem_gib, headroom_gib) is not None:
                    relaxed = trial
                    break
    return relaxed


def _lossy(base: Mapping[str, mm.ServerSettings], changed: Mapping[str, mm.ServerSettings]) -> bool:
    fields = ("kv_cache_dtype", "quantization", "max_pixels")
    return any(getattr(base[n], f) != getattr(changed[n], f) for n in changed for f in fields)


def apply_cheapest_fix(
    configs: Sequence[ModelConfig], plan: Plan, overrides: Mapping[str, PlanOverrides] | None = None
) -> Plan:
    """The plan itself when it fits, else re-planned with its cheapest fix that keeps every model.

    Fixes that drop a model are only proposed: which model to move to another card is the user's call.
    """
    if plan.fits:
        return plan
    settings = {c.name: _settings(c, (overrides or {}).get(c.name)) for c in configs}
    names = tuple(c.name for c in configs)
    for fix in find_fixes(configs, settings, plan.gpu_mem_gib, plan.headroom_gib):
        if fix.models == names:
            fixed = plan_models(configs, plan.gpu_mem_gib, headroom_gib=plan.headroom_gib, overrides=fix.overrides)
            return replace(fixed, applied=fix.description)
    return plan


def find_fixes(
    configs: Sequence[ModelConfig],
    settings: Mapping[str, mm.ServerSettings],
    gpu_mem_gib: float,
    headroom_gib: float,
) -> list[Fix]:
    """The changes that make the set fit, cheapest first: each kind alone, then all kinds, then a drop."""
    budget = f"of {gpu_mem_gib - headroom_gib:.2f} GiB"
    names = tuple(c.name for c in configs)
    base = dict(settings)
    fixes: list[Fix] = []
    for label, steps in _LADDERS:
        for step in steps:
            trial = {c.name: step(c, base[c.name]) for c in configs}
            plans = _try(configs, trial, gpu_mem_gib, headroom_gib)
            if plans is not None:
                text = f"{label}: {_describe(configs, base, plans)} ({_total(plans, gpu_mem_gib):.2f} GiB {budget})"
                fixes.append(Fix(text, {n: _overrides(trial[n]) for n in names}, names, _lossy(base, trial)))
                break
    if not fixes:  # no kind alone suffices: add the kinds up, cheapest first, until the set fits
        combined = dict(base)
        for _label, steps in _LADDERS:
            plans = None
            for step in steps:
                trial = {c.name: step(c, combined[c.name]) for c in configs}
                plans = _try(configs, trial, gpu_mem_gib, headroom_gib)
                if plans is not None:
                    break
            combined = trial
            if plans is not None:
                combined = _relax(configs, base, combined, gpu_mem_gib, headroom_gib)
                plans = _try(configs, combined, gpu_mem_gib, headroom_gib)
                assert plans is not None  # relaxing only keeps changes that still fit
                text = f"together: {_describe(configs, base, plans)} ({_total(plans, gpu_mem_gib):.2f} GiB {budget})"
                fixes.append(Fix(text, {n: _overrides(combined[n]) for n in names}, names, _lossy(base, combined)))
                break
    for keep in range(len(configs) - 1, 0, -1):  # drop models from the end of the list until the rest fits
        kept, dropped = list(configs[:keep]), [c.name for c in configs[keep:]]
        plans = _try(kept, base, gpu_mem_gib, headroom_gib)
        if plans is not None:
            text = f"drop {', '.join(dropped)} (serve on another card) ({_total(plans, gpu_mem_gib):.2f} GiB {budget})"
            fixes.append(Fix(text, {c.name: _overrides(base[c.name]) for c in kept}, tuple(c.name for c in kept)))
            break
    return fixes
