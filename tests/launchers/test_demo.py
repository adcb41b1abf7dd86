"""`make demo` brings up the gateway in front of simulated models, and the web UI in front of it; stops cleanly."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai

from gateway.models.registry import load_registry
from gateway.settings import PROJECT_ROOT
from tests.ports import free_port


def test_demo_serves_every_servable_model_and_stops_on_sigterm() -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "launchers.demo", "--port", str(port), "--free-ports", "--tokens-per-s", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = ""
    try:
        # The demo prints its banner once the gateway is ready: wait for it (bounded), reading as it comes.
        deadline = time.monotonic() + 90  # the UI imports Gradio: seconds on a busy 2-core machine
        assert demo.stdout is not None
        while "SIMULATED DEMO" not in output:
            assert time.monotonic() < deadline, f"the demo did not become ready: {output}"
            assert demo.poll() is None, f"the demo exited early: {output}"
            # Raw reads on the descriptor: a buffered readline could hide lines from select().
            if select.select([demo.stdout], [], [], 0.2)[0]:
                output += os.read(demo.stdout.fileno(), 65536).decode()
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as client:
            models = {m.id for m in client.models.list().data}
            answer = client.chat.completions.create(model="dots-ocr", messages=[{"role": "user", "content": "hi"}])
        registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
        assert models == {name for name, config in registry.items() if config.servable}
        assert "SIMULATED" in (answer.choices[0].message.content or "")
        # The banner names the web UI's address, and the UI answers there.
        match = re.search(r"Web UI:\s+(http://127\.0\.0\.1:(\d+)/)", output)
        assert match, output
        ui_url, ui_port = match.group(1), int(match.group(2))
        page = httpx.get(ui_url, timeout=10)
        assert page.status_code == 200
        assert "gradio" in page.text.lower()
    finally:
        demo.send_signal(signal.SIGTERM)
        output += demo.communicate(timeout=20)[0].decode()
    assert demo.returncode == 0, output
    # Everything it started is gone: the gateway and UI ports no longer answer.
    for stopped in (port, ui_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", stopped)) != 0


def test_demo_takes_its_port_from_gateway_port_and_says_how_to_pick_another() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "launchers.demo", "--free-ports"],
            env={**os.environ, "GATEWAY_PORT": str(port)},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"the gateway port {port} is already in use" in done.stderr
    assert f"GATEWAY_PORT={port + 1} make demo (or python -m launchers.demo --port {port + 1})" in done.stderr
