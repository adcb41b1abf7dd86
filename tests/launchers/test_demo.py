"""`make demo` brings up the gateway in front of simulated models, and stops cleanly."""

from __future__ import annotations

import os
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_serves_every_servable_model_and_stops_on_sigterm() -> None:
    port = _free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "launchers.demo", "--port", str(port), "--free-ports", "--tokens-per-s", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = ""
    try:
        # The demo prints its banner once the gateway is ready: wait for it (bounded), reading as it comes.
        deadline = time.monotonic() + 30
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
    finally:
        demo.send_signal(signal.SIGTERM)
        output += demo.communicate(timeout=20)[0].decode()
    assert demo.returncode == 0, output
    # Everything it started is gone: the gateway port no longer answers.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
