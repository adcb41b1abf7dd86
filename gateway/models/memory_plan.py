"""The GPU memory plan: what the planner decides for each model, and what the launchers and compose read.

Computed by `gateway/models/fitting.py`; read by the catalogue (`gateway/models/catalog.py`) and the launchers
(`serve_args.py` for vllm serve argv, `supervisor.py` for up/down/status, `compose.py` for compose files).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GIB = 1024**3


class PlanError(Exception):
    """Settings or a card that no plan can work with, explained in one line (the launchers print it and exit 1)."""


@dataclass(frozen=True)
class ModelPlan:
    """One vLLM server's share of the card and the settings that make it fit."""

    name: str
    gpu_memory_utilization: float  # fraction of the WHOLE card this server may use (vLLM's semantics)
    max_model_len: int
    max_num_seqs: int
    enforce_eager: bool
    kv_cache_dtype: Literal["auto", "fp8"]
    max_pixels: int  # the per-image pixel cap the plan budgets for (at most the config's)
    weights_gib: float
    activation_gib: float  # vision encoder and profiling activation reserve
    overhead_gib: float  # CUDA context, allocator slack and CUDA graphs
    kv_bytes_per_token: int
    kv_cache_gib: float
    quantization: Literal["fp8"] | None = None  # fp8 weights (`--quantization fp8`); None: the checkpoint's dtype

    @property
    def total_gib(self) -> float:
        """Everything this server needs on the card."""
        return self.weights_gib + self.activation_gib + self.overhead_gib + self.kv_cache_gib


@dataclass(frozen=True)
class Plan:
    """A set of models on one card."""

    gpu_mem_gib: float
    headroom_gib: float  # left free for the driver, the desktop and profiling error
    models: tuple[ModelPlan, ...]
    fits: bool
    fixes: tuple[str, ...] = ()  # when it does not fit: the cheapest changes that would make it, best first
    applied: str | None = None  # the fix the planner applied to make it fit (fitting.apply_cheapest_fix)

    def model(self, name: str) -> ModelPlan:
        """The plan of one model; PlanError if the plan has no such model."""
        for model in self.models:
            if model.name == name:
                return model
        raise PlanError(f"the plan has no model {name!r}; it has {', '.join(m.name for m in self.models)}")
