"""A broken or hostile OpenAI-compatible upstream on loopback, for the gateway's bounds on what it reads back.

Healthy enough to be served (`/health`, `/v1/models`), then its chat completions answer in the chosen `mode`:
`huge` (a valid JSON answer of `size` bytes), `gzip_bomb` (a small gzip body that inflates to `size` bytes),
`endless_event` (an SSE stream whose first event never ends: `size` bytes without a blank line), `drip` (one
byte of a JSON answer every 0.2 s, for ever). It records the headers of every chat request.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from typing import Any

from aiohttp import web


class HostileUpstream:
    def __init__(self, model: str, mode: str, size: int = 0) -> None:
        self.model, self.mode, self.size = model, mode, size
        self.chat_headers: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> HostileUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.chat_headers.append(dict(request.headers))
        await request.read()
        handler: Any = getattr(self, "_" + self.mode)
        response: web.StreamResponse = await handler(request)
        return response

    def _answer(self, padding: int) -> bytes:
        content = "x" * max(0, padding)
        return (
            b'{"id": "chatcmpl-1", "object": "chat.completion", "model": "%s", "choices": [{"index": 0, '
            b'"message": {"role": "assistant", "content": "%s"}, "finish_reason": "stop"}]}'
            % (self.model.encode(), content.encode())
        )

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self._answer(self.size), content_type="application/json")

    async def _gzip_bomb(self, request: web.Request) -> web.StreamResponse:
        body = gzip.compress(self._answer(self.size), 9)
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)  # sent as is: aiohttp compresses only when asked to

    async def _endless_event(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "')
        piece = b"x" * 65536
        for _ in range(self.size // len(piece)):
            await response.write(piece)
        await response.write(b'"}}]}\n\ndata: [DONE]\n\n')
        return response

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"{")
        while True:
            await asyncio.sleep(0.2)
            await response.write(b" ")
