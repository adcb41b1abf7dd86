"""One real `vllm serve` on a loopback port, started with the launcher's own argv for a model config.

`serving_argv` takes exactly what `python -m launchers up` would run for the model alone on a 16 GB card
(launchers.planner + launchers.serve_args) and changes only what must differ on this CPU machine; each
substitution is listed in SUBSTITUTIONS with its reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.models.fitting import PlanOverrides, plan_models
from gateway.models.memory_plan import ModelPlan
from gateway.models.registry import ImagePolicy, ModelConfig
from launchers.planner import resolve_plan
from launchers.process_group import Group, spawn, stop_groups
from launchers.serve_args import served_max_pixels, server_command
from tests.ports import free_port
from tests.real_vllm.vllm_env import server_env, venv_dir

START_TIMEOUT_S = 300.0  # 25-70 s measured on 2 shared cores
CPU_MAX_MODEL_LEN = 4096
PLAN_GPU_GIB = "16"  # the plan the launchers make for this model alone on the 16 GB profile's card
# moondream3 fits no 16 GB card (17 GiB of weights, fp8 or not): planned on the smallest common card it fits.
PLAN_GPU_GIB_FOR = {"moondream3": "24"}

SUBSTITUTIONS = {
    "<hf repo>": "the tiny model's folder: the hub is unreachable and a 2B model would not fit the time budget",
    "--revision": "dropped: a local folder has no revisions",
    "--tokenizer": "the tiny model's folder, which holds its tokenizer (moondream3's argv names a hub repo)",
    "--port": "a free loopback port, so a developer's own servers on 8101-8104 are never touched",
    "--gpu-memory-utilization": "dropped: GPU-only; the CPU build sizes its KV cache by VLLM_CPU_KVCACHE_SPACE",
    "--max-model-len": f"{CPU_MAX_MODEL_LEN}: profiling is faster and over-long prompts are cheap to send",
    "--dtype": "float32 added: the tiny models are saved in float32 and bf16 matmuls are slow on this CPU",
    "--enforce-eager": "added: torch.compile's warm-up was half of every start (61 s -> 28 s for dots-ocr, ten "
    "starts per run); it changes how the model's layers run, not what the server accepts or answers",
}
# A tiny model built without weights: DeepSeek-OCR-2, whose SAM ViT-B and 24-layer Qwen2 vision encoders have
# their real sizes written into vLLM's code (0.45 B parameters whatever config.json says), and Moondream3, which
# has no transformers class to write a checkpoint with (vLLM's own module names its parameters). The reasons
# below are DeepSeek-OCR-2's; Moondream3's encoder is tiny, and bf16 is its checkpoint's own dtype.
DUMMY_WEIGHT_SUBSTITUTIONS = {
    "--load-format": "dummy: vLLM fills the parameters with small random values itself, where a weights file "
    "would be 1.8 GB of random float32 written only to be read back",
    "--dtype": "bfloat16 instead of float32: those encoders' large matmuls run 2-3x faster in bf16 on this CPU "
    "(AMX), a 6-tile page 20 s instead of 50",
    "--skip-mm-profiling": "added: profiling runs the encoders on two 1536x1536 dummy pages at once, and the "
    "worker grew past 20 GB and was OOM-killed; a real page needs about 1 GB",
}


@dataclass(frozen=True)
class Launch:
    """What the launcher planned for a model, and the argv after the CPU substitutions."""

    config: ModelConfig
    plan: ModelPlan
    argv: list[str]

    @property
    def image_policy(self) -> ImagePolicy:
        """The pixel policy the server runs with: the config's, max capped as the plan caps it."""
        return self.config.image.model_copy(update={"max_pixels": served_max_pixels(self.config, self.plan)})


def launcher_plan(model_name: str, overrides: PlanOverrides | None = None) -> tuple[ModelConfig, ModelPlan]:
    """The config and the plan `python -m launchers up --gpu-mem 16 MODEL` would use (24 for the models in
    PLAN_GPU_GIB_FOR); `overrides` replace the profile's settings as a profile's own would (e.g. a lower pixel
    cap). A plan that does not fit is refused: the launchers would not start it."""
    plan, configs = resolve_plan(
        profile=None, gpu_mem=PLAN_GPU_GIB_FOR.get(model_name, PLAN_GPU_GIB), models=[model_name]
    )
    if overrides is not None:
        plan = plan_models(
            [configs[model_name]], plan.gpu_mem_gib, headroom_gib=plan.headroom_gib, overrides={model_name: overrides}
        )
    if not plan.fits:
        raise AssertionError(f"the launchers would not start {model_name} on {plan.gpu_mem_gib:g} GiB: {plan.fixes}")
    return configs[model_name], plan.model(model_name)


def serving_argv(model_name: str, model_dir: Path, port: int, overrides: PlanOverrides | None = None) -> Launch:
    """`vllm serve` argv for `model_name` as the launchers build it, with the substitutions above."""
    config, model_plan = launcher_plan(model_name, overrides)
    argv = server_command(config, model_plan, host="127.0.0.1", port=port)
    if argv[:3] != ["vllm", "serve", config.hf_repo]:
        raise AssertionError(f"unexpected launcher argv: {argv}")
    out = [str(venv_dir() / "bin" / "vllm"), "serve", str(model_dir)]
    dropped = ("--revision", "--gpu-memory-utilization")
    replaced = {"--tokenizer": str(model_dir), "--max-model-len": str(CPU_MAX_MODEL_LEN)}
    rest = argv[3:]
    i = 0
    while i < len(rest):
        flag = rest[i]
        if flag in dropped or flag in replaced:  # each takes a value
            if flag in replaced:
                out += [flag, replaced[flag]]
            i += 2
            continue
        out.append(flag)
        i += 1
    if "--enforce-eager" not in out:
        out.append("--enforce-eager")
    if any(model_dir.glob("*.safetensors")):
        out += ["--dtype", "float32"]
    else:
        out += ["--load-format", "dummy", "--dtype", "bfloat16", "--skip-mm-profiling"]
    return Launch(config, model_plan, out)


class RealVllmServer:
    """A `vllm serve` process group with its log; `stop()` ends the whole group (engine core included)."""

    def __init__(self, model_name: str, model_dir: Path, log_dir: Path, overrides: PlanOverrides | None = None) -> None:
        self.port = free_port()
        self.launch = serving_argv(model_name, model_dir, self.port, overrides)
        self.model_name = model_name
        self.overrides = overrides
        self.log_path = log_dir / f"vllm-{model_name}-{self.port}.log"
        self._group: Group | None = None
        self.startup_s = 0.0

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> RealVllmServer:
        started = time.monotonic()
        process, _ = spawn(self.launch.argv, log_path=self.log_path, env=server_env())
        self._group = Group(self.model_name, process.pid, None, process)
        deadline = started + START_TIMEOUT_S
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    self._fail(f"vllm serve exited with status {process.returncode} while starting")
                try:
                    if client.get(f"{self.root_url}/health").status_code == 200:
                        self.startup_s = time.monotonic() - started
                        print(f"vllm serve {self.model_name}: ready in {self.startup_s:.0f} s", flush=True)
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(1.0)
        self._fail(f"vllm serve did not answer /health 200 within {START_TIMEOUT_S:.0f} s")
        raise AssertionError("unreachable")

    def _fail(self, why: str) -> None:
        self.stop()
        tail = "\n".join(self.log_text().splitlines()[-80:])
        raise RuntimeError(f"{why}\nargv: {' '.join(self.launch.argv)}\n--- last lines of {self.log_path} ---\n{tail}")

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash or the OOM killer would: no graceful shutdown."""
        group = self._group
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group.pid, signal.SIGKILL)
            if group.process is not None:
                group.process.wait(30)
            self._group = None

    def stop(self) -> None:
        if self._group is not None:
            stop_groups([self._group], grace_s=20.0)
            self._group = None
