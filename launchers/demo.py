"""`make demo`: the real gateway in front of SIMULATED vLLM servers, for trying every endpoint without a GPU.

Each model vLLM can serve gets a vLLM stand-in on the port its config names (so the gateway's default
upstream URLs just work), answering with canned text. The gateway listens on 127.0.0.1 only. Ctrl-C or
SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import httpx

from gateway.models.registry import load_registry
from gateway.settings import PROJECT_ROOT

_READY_TIMEOUT_S = 20.0
_STOP_GRACE_S = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    parser.add_argument("--tokens-per-s", type=float, default=40.0, help="simulated generation speed")
    parser.add_argument(
        "--free-ports", action="store_true", help="run the stand-ins on free ports instead of the configured ones"
    )
    args = parser.parse_args(argv)

    registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
    servable = {name: config for name, config in registry.items() if config.servable and config.serving}
    ports = {name: config.serving.port for name, config in servable.items() if config.serving}
    if args.free_ports:
        # Twelve stand-ins: a port the OS hands out twice, or the gateway's own, would make one fail to bind.
        taken = {args.port}
        for name in ports:
            port = _free_port()
            while port in taken:
                port = _free_port()
            ports[name] = port
            taken.add(port)
    busy = [f"{port} ({name})" for name, port in ports.items() if _in_use(port)] + (
        [f"{args.port} (gateway)"] if _in_use(args.port) else []
    )
    if busy:
        print(f"demo: ports already in use: {', '.join(busy)}; stop what holds them first", file=sys.stderr)
        return 2

    processes: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        for name, port in ports.items():
            config = servable[name]
            reply = (
                f"[SIMULATED {name}: no model ran, this is the vLLM stand-in.] "
                "The gateway routed your request, forwarded it byte for byte and relayed this answer."
            )
            max_model_len = config.serving.max_model_len if config.serving else 8192
            standin_args = ["--host", "127.0.0.1", "--port", str(port), "--model", name, "--root", config.hf_repo]
            standin_args += ["--max-model-len", str(max_model_len), "--tokens-per-s", str(args.tokens_per_s)]
            if config.output_reader == "dots_layout_json":  # the stand-in answers layout prompts in dots JSON only
                standin_args += ["--answers", "dots-ocr"]
            processes.append(_spawn(["-m", "launchers.vllm_standin", *standin_args, "--reply", reply]))
        upstreams = {name: f"http://127.0.0.1:{port}/v1" for name, port in ports.items()}
        gateway_env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(args.port),
            "GATEWAY_LOG_LEVEL": "warning",
            "GATEWAY_MODELS": ",".join(ports),
            "GATEWAY_UPSTREAMS": json.dumps(upstreams),
            # A throwaway store: the demo's jobs and cache need not outlive it.
            "GATEWAY_STORE_PATH": str(Path(tempfile.mkdtemp(prefix="vlm-demo-")) / "gateway-store.sqlite3"),
        }
        processes.append(_spawn(["-m", "gateway"], gateway_env))
        _wait_ready(f"http://127.0.0.1:{args.port}")
        _print_banner(args.port, list(ports))
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("demo: a process exited unexpectedly; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except TimeoutError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop(processes)


def _spawn(args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.Popen([sys.executable, *args], cwd=Path(PROJECT_ROOT), env=env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(root_url: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(root_url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the gateway at {root_url} was not ready within {_READY_TIMEOUT_S:g} s")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print_banner(port: int, models: list[str]) -> None:
    base = f"http://127.0.0.1:{port}"
    print(
        f"""
==============================================================================
 SIMULATED DEMO - no GPU, no model: every answer comes from a vLLM stand-in.
 Gateway: {base}   models: {", ".join(models)}
==============================================================================
 curl {base}/v1/models
 curl {base}/v1/chat/completions -H 'Content-Type: application/json' \\
   -d '{{"model": "{models[0]}", "messages": [{{"role": "user", "content": "Hello"}}]}}'
 curl -N {base}/v1/chat/completions -H 'Content-Type: application/json' \\
   -d '{{"model": "{models[0]}", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'
 curl {base}/metrics        open {base}/docs in a browser
 Ctrl-C stops the demo.
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
