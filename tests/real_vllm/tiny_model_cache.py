"""The tiny random models, built once per spec: `tiny_model("qwen2-vl")` returns a folder vLLM can serve.

Each model folder is keyed by a hash of its spec files and the builder's code, so editing a spec builds a
new one and an unchanged spec is never rebuilt (about 5-10 s each with the vLLM venv's Python).
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from tests.real_vllm.vllm_env import server_env, tiny_models_dir, venv_python

SPECS = Path(__file__).resolve().parent / "tiny_models"
_BUILDER_FILES = ("build.py", "dots_weights.py", "mtp_weights.py")


def spec_hash(name: str) -> str:
    """A digest of the spec folder's files and the builder's code (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted((SPECS / name).iterdir()) + [SPECS / builder for builder in _BUILDER_FILES]
    for path in files:
        if path.is_file() and path.suffix != ".pyc":
            digest.update(f"{path.parent.name}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tiny_model(name: str) -> Path:
    """The built model folder for spec `name`, building it first if this spec was never built."""
    if not (SPECS / name / "config.json").is_file():
        raise FileNotFoundError(f"no tiny model spec {SPECS / name}")
    folder = tiny_models_dir() / f"{name}-{spec_hash(name)}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    command = [str(venv_python()), str(SPECS / "build.py"), str(SPECS / name), str(folder)]
    result = subprocess.run(command, env=server_env(), capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building tiny model {name} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    print(f"built tiny model {name} in {time.monotonic() - started:.1f} s: {folder}", flush=True)
    return folder
