"""`StandinServer`: the stand-in on a loopback port, served from a background thread.

The thread owns its own event loop, so sync tests (the `openai` SDK, httpx) and async tests on
another loop can both talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from .app import create_standin_app
from .config import StandinConfig
from .state import StandinState

_START_TIMEOUT_S = 10.0


class StandinServer:
    """A running stand-in: `with StandinServer(config) as server: OpenAI(base_url=server.base_url)`.

    `port=0` picks a free port. `shutdown_timeout` bounds how long `stop()` lets in-flight
    requests finish before cancelling them.
    """

    def __init__(
        self,
        config: StandinConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state: StandinState | None = None,
        shutdown_timeout: float = 0.5,
    ) -> None:
        self.config = config if config is not None else StandinConfig(models=("standin-model",))
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._state = state if state is not None else StandinState.from_config(self.config)
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> StandinState:
        """Recorded requests, counters and faults of this server."""
        return self._state

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("StandinServer is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """`http://HOST:PORT`, where `/health` and `/metrics` live."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/v1`, the OpenAI SDK's `base_url`."""
        return f"{self.root_url}/v1"

    def start(self) -> StandinServer:
        """Bind and serve in a background thread; returns once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("StandinServer is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=self._run_loop, name="vllm-standin", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), loop)
        try:
            self._port = future.result(_START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, cancel what is still running, and join the thread. Safe to repeat."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if self._runner is not None and loop.is_running():
                cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
                cleanup.result(self._shutdown_timeout + _START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT_S)
            self._loop = self._thread = self._runner = None
            self._port = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _serve(self) -> int:
        app = create_standin_app(self.config, self._state)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        port: int = runner.addresses[0][1]
        return port

    def _run_loop(self) -> None:
        loop = self._loop
        assert loop is not None  # set by start() before the thread exists
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever the runner's cleanup did not finish is cancelled, so the loop closes clean.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
