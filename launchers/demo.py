"""`make demo`: the real gateway in front of SIMULATED vLLM servers, for trying every endpoint without a GPU.

Each model vLLM can serve gets a vLLM stand-in on the port its config names (so the gateway's default
upstream URLs just work). Chat gets canned text. dots-ocr's document prompts get answers in dots.ocr's own
output format: for a page of a PDF named with `--documents` (default: the bundled samples), read from that
PDF's own text layer, recognised by how the page looks (launchers/vllm_standin/known_pages.py: the stand-in
only ever sees the page image, as a real model would); for anything else, a fixed simulated page. Every
answer says it is simulated. The gateway listens on 127.0.0.1 only. The web UI (`vlm-ui`, the `ui` extra) is
started in front of it when Gradio is installed. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from launchers.ports import gateway_port_from_env, in_use, pick_another

_READY_TIMEOUT_S = 20.0
_STOP_GRACE_S = 5.0
_UI_READY_TIMEOUT_S = 60.0  # importing Gradio takes seconds on a small machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=None, help="gateway port (default: GATEWAY_PORT, else 8000)")
    parser.add_argument("--tokens-per-s", type=float, default=40.0, help="simulated generation speed")
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="run the stand-ins (and the UI) on free ports instead of the configured ones",
    )
    parser.add_argument("--ui-port", type=int, default=7860, help="web UI port (default 7860)")
    parser.add_argument("--no-ui", action="store_true", help="do not start the web UI")
    parser.add_argument(
        "--documents",
        type=Path,
        nargs="+",
        default=None,
        help="PDFs you will send: the simulated dots-ocr answers their pages from the PDFs' own text layer "
        "(default: the bundled samples in tests/fixtures/documents)",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        try:
            args.port = gateway_port_from_env()
        except ValueError as exc:
            parser.error(str(exc))
    with_ui = not args.no_ui and importlib.util.find_spec("gradio") is not None
    if not args.no_ui and not with_ui:
        print("demo: the web UI needs the ui extra (pip install -e '.[ui]'); starting without it", file=sys.stderr)

    documents = [path.resolve() for path in args.documents] if args.documents else _sample_documents()
    missing = [str(path) for path in documents if not path.is_file()]
    if missing:
        print(f"demo: no such document: {', '.join(missing)}", file=sys.stderr)
        return 2
    registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
    servable = {name: config for name, config in registry.items() if config.servable and config.serving}
    ports = {name: config.serving.port for name, config in servable.items() if config.serving}
    ui_port = args.ui_port
    if args.free_ports:
        # Many stand-ins: a port the OS hands out twice, or the gateway's own, would make one fail to bind.
        taken = {args.port}
        for name in ports:
            port = _free_port()
            while port in taken:
                port = _free_port()
            ports[name] = port
            taken.add(port)
        ui_port = _free_port()
        while ui_port in taken:
            ui_port = _free_port()
    busy_standins = [f"{port} ({name})" for name, port in ports.items() if in_use(port)]
    if with_ui and in_use(ui_port):
        busy_standins.append(f"{ui_port} (web UI; --ui-port or --no-ui)")
    if busy_standins:
        advice = "stop what holds them, or run the stand-ins on free ports: make demo DEMO_ARGS=--free-ports"
        print(f"demo: ports already in use: {', '.join(busy_standins)}; {advice}", file=sys.stderr)
        return 2
    if in_use(args.port):
        advice = pick_another(args.port, "make demo", "python -m launchers.demo --port")
        print(f"demo: the gateway port {args.port} is already in use; {advice}", file=sys.stderr)
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
                standin_args += ["--answers", "dots-ocr", "--documents", *map(str, documents)]
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
        ui_url = None
        if with_ui:
            ui_args = ["--gateway", f"http://127.0.0.1:{args.port}", "--host", "127.0.0.1", "--port", str(ui_port)]
            processes.append(_spawn(["-m", "vlm_ui", *ui_args], {"GRADIO_ANALYTICS_ENABLED": "False"}))
            ui_url = f"http://127.0.0.1:{ui_port}/"
            _wait_serving(ui_url, processes[-1])
        _print_banner(args.port, list(ports), documents, ui_url)
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


def _sample_documents() -> list[Path]:
    return sorted((Path(PROJECT_ROOT) / "tests" / "fixtures" / "documents").glob("*.pdf"))


def _spawn(args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.Popen([sys.executable, *args], cwd=Path(PROJECT_ROOT), env=env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _wait_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _UI_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimeoutError(f"the web UI exited with {process.returncode} before serving {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the web UI at {url} did not answer within {_UI_READY_TIMEOUT_S:g} s")


def _print_banner(port: int, models: list[str], documents: list[Path], ui_url: str | None = None) -> None:
    base = f"http://127.0.0.1:{port}"
    ui_line = f" Web UI:  {ui_url}   (Document, Chat, Models, Jobs)\n" if ui_url else ""
    known = ", ".join(path.name for path in documents)
    print(
        f"""
==============================================================================
 SIMULATED DEMO - no GPU, no model: every answer comes from a vLLM stand-in.
 Gateway: {base}   models: {", ".join(models)}
 dots-ocr answers the pages of these PDFs from their own text layer (recognised
 by their look; --documents to name yours): {known}.
 Anything else gets a fixed simulated page. All of it is labelled SIMULATED.
{ui_line}==============================================================================
 curl -F file=@{os.path.relpath(documents[0]) if documents else "page.pdf"} -F format=markdown {base}/v1/ocr
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
