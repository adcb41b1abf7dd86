"""Committed card profiles (`launchers/profiles/<name>.yaml`): which models share a card, with what settings.

Each profile is a fact the planner checks (tests/launchers/test_planner.py): its models fit on the card with
the headroom it names. A bad file is a LauncherError naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.models.fitting import PlanOverrides
from gateway.models.registry import ConfigError, read_yaml_model
from launchers.errors import LauncherError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class Profile:
    """A card size, the headroom left free on it, and the models it serves with their overrides."""

    name: str
    gpu_mem_gib: float
    headroom_gib: float
    models: tuple[str, ...]
    overrides: dict[str, PlanOverrides]


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_model_len: int | None = Field(None, ge=1)
    max_num_seqs: int | None = Field(None, ge=1)
    enforce_eager: bool | None = None
    kv_cache_dtype: Literal["auto", "fp8"] | None = None
    max_pixels: int | None = Field(None, ge=1)
    quantization: Literal["fp8"] | None = None


class _ProfileFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    gpu_mem_gib: float = Field(gt=0)
    headroom_gib: float = Field(ge=0)
    models: list[str] = Field(min_length=1)
    overrides: dict[str, _Overrides] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> _ProfileFile:
        if len(set(self.models)) != len(self.models):
            raise ValueError("a model is named twice")
        strays = sorted(set(self.overrides) - set(self.models))
        if strays:
            raise ValueError(f"overrides for models the profile does not serve: {strays}")
        if self.headroom_gib >= self.gpu_mem_gib:
            raise ValueError("headroom_gib must be smaller than gpu_mem_gib")
        return self


def profile_names() -> list[str]:
    """The committed profiles, e.g. ['12gb', '16gb']."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    """Read and validate `launchers/profiles/<name>.yaml`."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise LauncherError(f"no profile {name!r}; profiles: {', '.join(profile_names()) or '(none)'}")
    try:
        data = read_yaml_model(path, _ProfileFile)
    except ConfigError as exc:
        raise LauncherError(str(exc)) from exc
    if data.name != name:
        raise LauncherError(f"{path}: field `name`: {data.name!r} must match the file name {name!r}")
    overrides = {model: PlanOverrides(**o.model_dump()) for model, o in data.overrides.items()}
    return Profile(data.name, data.gpu_mem_gib, data.headroom_gib, tuple(data.models), overrides)
