"""The real gateway under uvicorn (uvloop + guarded httptools, as in production) on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.http.server import server_config
from gateway.routes.dependencies import GatewayState
from gateway.settings import Settings

_TIMEOUT_S = 10.0


class GatewayServer:
    """`with GatewayServer(settings) as gw:` serves the gateway until the block ends."""

    def __init__(self, settings: Settings) -> None:
        self.app: FastAPI = create_app(settings)
        # The configuration `python -m gateway` serves with (gateway/http/server.py), quieter logs aside.
        self._server = uvicorn.Server(server_config(self.app, settings, self.state.metrics, log_level="warning"))
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def server_state(self) -> uvicorn.server.ServerState:
        """uvicorn's own: the connections it holds."""
        return self._server.server_state

    @property
    def state(self) -> GatewayState:
        state: GatewayState = self.app.state.gateway
        return state

    def start(self) -> GatewayServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self) -> None:
        """Block until GET /ready answers 200 (every model has a healthy upstream)."""
        deadline = time.monotonic() + _TIMEOUT_S
        while httpx.get(self.root_url + "/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(_TIMEOUT_S)
            self._thread = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
