"""`python -m gateway` (`make run`): a busy port is refused up front with the setting that picks another."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from gateway.settings import PROJECT_ROOT


def test_a_busy_port_names_gateway_port(tmp_path: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}
        env["GATEWAY_STORE_PATH"] = str(tmp_path) + "/store.sqlite3"
        done = subprocess.run(
            [sys.executable, "-m", "gateway"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in done.stderr
    assert f"GATEWAY_PORT={port + 1} make run" in done.stderr
    assert "Traceback" not in done.stderr
