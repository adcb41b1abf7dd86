"""The web UI as its own process (`python -m vlm_ui`, what `vlm-ui` runs) on a free loopback port.

A subprocess rather than in-process: it is how the UI is deployed, and Gradio's server leaves sockets and an
event loop behind when closed in-process, which `filterwarnings = error` would turn into test errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import TracebackType

import httpx

from gateway.settings import PROJECT_ROOT
from tests.ports import free_port

_START_TIMEOUT_S = 60.0  # importing Gradio takes several seconds on a busy 2-core machine


class UIServer:
    """`with UIServer(gateway_url) as ui:` serves the UI at `ui.url` until the block ends."""

    def __init__(self, gateway_url: str, *, api_key: str | None = None, job_pages: int = 8) -> None:
        self.gateway_url = gateway_url
        self.api_key = api_key
        self.job_pages = job_pages
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> UIServer:
        self.port = free_port()
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "VLM_UI_JOB_PAGES": str(self.job_pages)}
        if self.api_key:
            env["VLM_UI_API_KEY"] = self.api_key  # the environment, not argv: keys stay out of `ps`
        command = [sys.executable, "-m", "vlm_ui", "--gateway", self.gateway_url]
        self._process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=env,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the UI exited with {self._process.returncode} before serving")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the UI did not serve {self.url} within {_START_TIMEOUT_S:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> UIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
