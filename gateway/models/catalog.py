"""The catalogue: every model config, what it costs, where it fits alone, what it is for.

Served by `GET /v1/models?verbose=true` and printed by `python -m launchers catalog`.

"Fits" is the planner's verdict for the model alone on a 12 GB or 16 GB card, with the default headroom. The
config's own settings are used when they fit, else the planner's cheapest fix (lossless ones first; a lossy
one such as fp8 weights is named in `settings_*.fix`). Each row also names the engine that serves the model,
its licence and what the licence forbids a gateway, its tasks and the layout modes it offers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.models import memory_model as mm
from gateway.models.fitting import find_fixes, plan_models
from gateway.models.memory_plan import PlanError
from gateway.models.registry import ConfigError, ModelConfig, PromptKey, load_registry
from gateway.settings import PROJECT_ROOT

CARDS = (12, 16)
# /v1/layout's `mode` values and the prompt each needs (gateway/documents/page.py reads the same prompts).
LAYOUT_MODES: dict[str, PromptKey] = {
    "all": "layout_all",
    "detect": "layout_detect",
    "web": "layout_web",
    "scene": "layout_scene",
}


def _fit_alone(config: ModelConfig, gpu_mem_gib: float) -> dict[str, Any]:
    """Whether the model fits alone, and with which settings (None when no engine serves it)."""
    if not config.servable:
        return {"fits": False, "max_model_len": None, "max_num_seqs": None, "gpu_memory_utilization": None, "fix": None}
    plan = plan_models([config], gpu_mem_gib)
    fix = None
    if not plan.fits:
        headroom = mm.default_headroom_gib(gpu_mem_gib)
        fixes = find_fixes([config], {config.name: mm.config_settings(config)}, gpu_mem_gib, headroom)
        if fixes:
            plan = plan_models([config], gpu_mem_gib, overrides=fixes[0].overrides)
            fix = fixes[0].description + (" [lossy]" if fixes[0].lossy else "")
    model = plan.models[0]
    return {
        "fits": plan.fits,
        "max_model_len": model.max_model_len,
        "max_num_seqs": model.max_num_seqs,
        "gpu_memory_utilization": model.gpu_memory_utilization,
        "fix": fix,
    }


def catalog_rows(registry: Mapping[str, ModelConfig] | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per model config (the project's by default), including those vLLM cannot serve."""
    if registry is None:
        try:
            registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
        except ConfigError as exc:
            raise PlanError(str(exc)) from exc
    rows = []
    for config in registry.values():
        row: dict[str, Any] = {
            "name": config.name,
            "hf_repo": config.hf_repo,
            "parameters_b": config.architecture.parameters_b,
            "weights_gib": round(mm.weights_gib(config), 2),
            "kv_kib_per_token": mm.kv_bytes_per_token(config, "auto") / 1024,
            "tasks": list(config.tasks),
            "layout_modes": [mode for mode, key in LAYOUT_MODES.items() if key in config.prompts],
            "engine": config.engine,
            "unsupported_reason": " ".join(config.unsupported_reason.split()) if config.unsupported_reason else None,
            "alternative": config.alternative,
            "licence": config.licence,
            "licence_note": " ".join(config.licence_note.split()) if config.licence_note else None,
        }
        for card in CARDS:
            fit = _fit_alone(config, card)
            row[f"fits_{card}gb"] = fit.pop("fits")
            row[f"settings_{card}gb"] = fit
        row["description"] = config.description
        rows.append(row)
    return rows
