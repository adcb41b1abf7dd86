"""`python -m launchers up | down | status` against a fake `vllm` (tests/launchers/fake_vllm/vllm).

The fake becomes the vLLM stand-in, or fails with vLLM's own start-up error texts, or hangs. Ports are free
ones: the tests hand `up` a plan whose configs name them (`fake_resolution`), in place of `launchers.planner`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import httpx
import openai
import pytest

from gateway.models.memory_plan import ModelPlan, Plan
from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT
from launchers.__main__ import main as launchers_main
from launchers.errors import LauncherError
from launchers.process_group import is_running
from launchers.run_state import read_state, state_path
from launchers.supervisor import Stack, serve_stack
from tests.ports import free_port

FAKE_VLLM_DIR = Path(__file__).parent / "fake_vllm"
REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
FIRST, SECOND = "qwen2-vl-2b", "dots-ocr"


def fake_resolution(ports: dict[str, int], *, fits: bool = True) -> tuple[Plan, dict[str, ModelConfig]]:
    """A plan for the given models, whose configs serve them on the given ports."""
    configs = {}
    for name, port in ports.items():
        config = REGISTRY[name]
        assert config.serving is not None
        configs[name] = config.model_copy(update={"serving": config.serving.model_copy(update={"port": port})})
    plans = tuple(ModelPlan(name, 0.3, 4096, 2, True, "auto", 1003520, 1.0, 1.0, 0.5, 28672, 1.0) for name in ports)
    fixes = ("drop phi-3.5-vision", "use --gpu-mem 16")
    return Plan(12.0, 0.8, plans, fits, () if fits else fixes), configs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake `vllm` first on PATH (then this venv's python for its shebang); returns its record file."""
    record = tmp_path / "fake-vllm-starts.jsonl"
    path = os.pathsep.join([str(FAKE_VLLM_DIR), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    monkeypatch.setenv("GATEWAY_HOST", "127.0.0.1")
    monkeypatch.setenv("GATEWAY_HEALTH_INTERVAL_S", "0.2")
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "warning")
    # The gateway `up` starts would otherwise create its store in the working directory (the checkout).
    monkeypatch.setenv("GATEWAY_STORE_PATH", str(tmp_path / "gateway-store.sqlite3"))
    for name in ("FAKE_VLLM_MODE", "FAKE_VLLM_MODES", "FAKE_VLLM_DELAY", "FAKE_VLLM_IGNORE_TERM"):
        monkeypatch.delenv(name, raising=False)
    return record


def starts(record: Path) -> list[dict[str, object]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def assert_all_gone(pids: list[int]) -> None:
    """Every pid has exited (zombies count as gone: their parent reaps them)."""
    deadline = time.monotonic() + 5
    while any(is_running(pid, None) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if is_running(pid, None)] == []


def every_pid(record: Path, state_pids: list[int]) -> list[int]:
    """The servers, their "engine core" children and whatever the state file named."""
    return [int(str(s[key])) for s in starts(record) for key in ("pid", "child")] + state_pids


def test_servers_start_one_after_another_then_the_gateway_answers(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.6")
    plan, configs = fake_resolution({FIRST: free_port(), SECOND: free_port()})
    gateway_port = free_port()
    stack = Stack(log_dir=tmp_path / "logs", gateway_port=gateway_port, startup_timeout_s=20, grace_s=3)
    try:
        stack.start(plan, configs)
        first, second = starts(fake_vllm)
        assert (first["model"], second["model"]) == (FIRST, SECOND)
        # The second started only once the first answered /health: after its delay and its boot.
        assert float(str(second["started"])) >= float(str(first["started"])) + 0.6
        state = read_state(state_path(tmp_path / "logs"))
        assert state is not None
        assert [(p.name, p.kind) for p in state.processes] == [
            (FIRST, "server"),
            (SECOND, "server"),
            ("gateway", "gateway"),
        ]
        # The plan lowered dots-ocr's pixel cap: the gateway resizes pages to what its server runs with.
        environ = Path(f"/proc/{state.processes[-1].pid}/environ").read_bytes().split(b"\0")
        assert b'GATEWAY_MODEL_MAX_PIXELS={"dots-ocr": 1003520}' in environ
        with openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="x", max_retries=0) as client:
            assert {m.id for m in client.models.list().data} == {FIRST, SECOND}
            answer = client.chat.completions.create(model=SECOND, messages=[{"role": "user", "content": "hi"}])
        assert "stand-in" in (answer.choices[0].message.content or "")
        assert "fake vllm serve rednote-hilab/dots.ocr" in (tmp_path / "logs" / f"{SECOND}.log").read_text()
    finally:
        stack.stop()
    assert_all_gone(every_pid(fake_vllm, [p.pid for p in state.processes]))
    assert not state_path(tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("mode", "quoted"),
    [
        ("oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB"),
        ("kv_too_small", "To serve at least one request with the model's max seq len (32768)"),
        ("no_cache_blocks", "ValueError: No available memory for the cache blocks."),
        ("free_memory", "Free memory on device (3.2/11.63 GiB) on startup is less than desired"),
        ("crash", "RuntimeError: fake vllm crashed for the test"),
    ],
)
def test_a_failed_start_quotes_vllm_and_stops_what_was_started(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, quoted: str
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODES", json.dumps({SECOND: mode}))
    # One two-server case is enough to show the first is stopped; the rest fail at once.
    ports = {FIRST: free_port(), SECOND: free_port()} if mode == "oom" else {SECOND: free_port()}
    plan, configs = fake_resolution(ports)
    with pytest.raises(LauncherError) as failure:
        serve_stack(plan, configs, log_dir=tmp_path / "logs", gateway_port=free_port(), startup_timeout_s=20)
    message = str(failure.value)
    assert message.startswith(f"{SECOND} exited with status 1 while starting: ")
    assert quoted in message
    assert "Engine core initialization failed" not in message  # vLLM's own last line is the less telling one
    assert f"(log: {tmp_path / 'logs' / SECOND}.log)" in message
    assert [s["model"] for s in starts(fake_vllm)] == list(ports)
    assert_all_gone(every_pid(fake_vllm, []))
    assert not state_path(tmp_path / "logs").exists()


def test_a_hang_hits_the_startup_timeout_and_a_stubborn_server_is_killed(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    monkeypatch.setenv("FAKE_VLLM_IGNORE_TERM", "1")
    plan, configs = fake_resolution({FIRST: free_port()})
    began = time.monotonic()
    with pytest.raises(
        LauncherError, match=rf"^{FIRST} did not answer /health with 200 within 1 s; its log says: INFO fake vllm"
    ):
        serve_stack(
            plan, configs, log_dir=tmp_path / "logs", gateway_port=free_port(), startup_timeout_s=1, grace_s=0.5
        )
    assert time.monotonic() - began < 8
    assert_all_gone(every_pid(fake_vllm, []))


@pytest.fixture
def fake_planner(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """`launchers.planner.resolve_plan` answers with what the test puts in the returned dict."""
    answer: dict[str, object] = {}
    planner = types.ModuleType("launchers.planner")
    planner.resolve_plan = lambda **_: answer["resolution"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "launchers.planner", planner)
    return answer


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert launchers_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("launchers: ")
    assert "Traceback" not in err
    return err


def test_refusals_are_one_line_errors(
    fake_vllm: Path,
    fake_planner: dict[str, object],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fake_planner["resolution"] = fake_resolution({FIRST: port})
        err = _one_line_error(capsys, ["up", "--log-dir", str(tmp_path), "--gateway-port", str(free_port())])
        assert f"port already in use: {port} ({FIRST})" in err
        # The gateway's port comes from GATEWAY_PORT unless --gateway-port says otherwise.
        fake_planner["resolution"] = fake_resolution({FIRST: free_port()})
        monkeypatch.setenv("GATEWAY_PORT", str(port))
        err = _one_line_error(capsys, ["up", "--log-dir", str(tmp_path)])
        assert f"port already in use: {port} (gateway)" in err
        assert f"GATEWAY_PORT={port + 1} make up (or python -m launchers up --gateway-port {port + 1})" in err
        monkeypatch.delenv("GATEWAY_PORT")
    fake_planner["resolution"] = fake_resolution({FIRST: free_port()}, fits=False)
    err = _one_line_error(capsys, ["up", "--log-dir", str(tmp_path)])
    assert "does not fit on a 12 GiB card; fixes: drop phi-3.5-vision; use --gpu-mem 16" in err
    monkeypatch.setenv("PATH", str(tmp_path))
    err = _one_line_error(capsys, ["up", "--log-dir", str(tmp_path)])
    assert err == "launchers: vllm is not installed: pip install '.[serve]'\n"
    assert starts(fake_vllm) == []


BOOT = """
import sys, types, json
from tests.launchers.test_supervisor import fake_resolution
planner = types.ModuleType("launchers.planner")
resolution = fake_resolution(json.loads(sys.argv[1]))
planner.resolve_plan = lambda **_: resolution
sys.modules["launchers.planner"] = planner
from launchers.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def _launchers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launchers", *args], cwd=cwd, capture_output=True, text=True, timeout=40, check=False
    )


def _up_in_background(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """`up` in its own process with the fake planner (cwd: tmp_path, so its logs/ is tmp_path/logs); ready."""
    gateway_port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    ports = json.dumps({FIRST: free_port()})
    up = subprocess.Popen(
        [sys.executable, "-c", BOOT, ports, "up", "--gateway-port", str(gateway_port), "--startup-timeout", "20"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        assert up.poll() is None, up.communicate()[0]
        assert time.monotonic() < deadline, "up did not get ready"
        try:
            if httpx.get(f"http://127.0.0.1:{gateway_port}/ready", timeout=1).status_code == 200:
                return up, gateway_port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def _state_pids(tmp_path: Path) -> list[int]:
    state = read_state(state_path(tmp_path / "logs"))
    assert state is not None
    return [state.supervisor.pid, *(p.pid for p in state.processes)]


def test_sigterm_to_up_stops_everything_and_leaves_no_orphan(fake_vllm: Path, tmp_path: Path) -> None:
    up, _ = _up_in_background(tmp_path)
    try:
        status = _launchers(tmp_path, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert FIRST in status.stdout
        assert "/health 200" in status.stdout
        assert "/ready 200" in status.stdout
        pids = _state_pids(tmp_path)
        up.send_signal(signal.SIGTERM)
        output = up.communicate(timeout=20)[0]
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, output
    assert "up: running" in output
    assert_all_gone(every_pid(fake_vllm, pids))
    assert not state_path(tmp_path / "logs").exists()


def test_down_from_another_process_stops_a_running_up(fake_vllm: Path, tmp_path: Path) -> None:
    up, gateway_port = _up_in_background(tmp_path)
    try:
        pids = _state_pids(tmp_path)
        down = _launchers(tmp_path, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert f"down: stopped {FIRST}, gateway" in down.stdout
        output = up.communicate(timeout=20)[0]
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, output
    assert_all_gone(every_pid(fake_vllm, pids))
    status = _launchers(tmp_path, "status")
    assert status.returncode == 1
    assert "nothing started by `up` runs" in status.stdout
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", gateway_port)) != 0


def test_a_llama_cpp_model_is_started_with_llama_server_and_probed_on_health(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "ok")
    plan, configs = fake_resolution({"moondream2": free_port()})
    gateway_port = free_port()
    stack = Stack(log_dir=tmp_path / "logs", gateway_port=gateway_port, startup_timeout_s=20, grace_s=3)
    try:
        stack.start(plan, configs)
        [start] = starts(fake_vllm)
        argv = start["argv"]
        assert isinstance(argv, list)
        assert argv[:4] == ["-hf", "ggml-org/moondream2-20250414-GGUF", "--alias", "moondream2"]
        assert "--gpu-memory-utilization" not in argv  # a vLLM flag: llama-server sizes itself
        with openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="x", max_retries=0) as client:
            answer = client.chat.completions.create(model="moondream2", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
    finally:
        stack.stop()


def test_a_llama_server_start_up_failure_is_quoted_with_its_hint(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLAMA_MODE", "no_projector")
    plan, configs = fake_resolution({"moondream2": free_port()})
    with pytest.raises(LauncherError) as failure:
        serve_stack(plan, configs, log_dir=tmp_path / "logs", gateway_port=free_port(), startup_timeout_s=20)
    message = str(failure.value)
    assert "failed to load multimodal projector" in message
    assert "[the projector (--mmproj) is missing or does not match]" in message
