"""A broken or hostile OpenAI-compatible upstream on loopback, for the gateway's bounds on what it reads back.

Healthy enough to be served (`/health`, `/v1/models`), then its chat completions answer in the chosen `mode`:
`huge` (a valid JSON answer of `size` bytes), `gzip_bomb` (a small gzip body that inflates to `size` bytes),
`endless_event` (an SSE stream whose first event never ends: `size` bytes without a blank line), `drip` (one
byte of a JSON answer every 0.2 s, for ever), `ragged_stream` (a valid SSE stream, the `stream` property, written
5 bytes at a time so events and their blank lines straddle reads), `gzip_stream` (the same stream gzip-compressed,
flushed per event). It records the headers of every chat request.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from typing import Any

from aiohttp import web


def _stream_events(model: str) -> bytes:
    chunks = [
        b'{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "%s", "choices": [{"index": 0, '
        b'"delta": {"content": "%s"}, "finish_reason": null}]}' % (model.encode(), word)
        for word in (b"one ", b"two, ", b"three ", b"\\n\\nfour")
    ]
    return b"".join(b"data: " + chunk + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


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

    @property
    def stream(self) -> bytes:
        """The SSE bytes `ragged_stream` and `gzip_stream` send (before compression)."""
        return _stream_events(self.model)

    async def _ragged_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        body = self.stream
        for start in range(0, len(body), 5):
            await response.write(body[start : start + 5])
            await asyncio.sleep(0.002)  # a read for each piece, not one for the whole body
        return response

    async def _gzip_stream(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        for event in self.stream.split(b"\n\n")[:-1]:
            await response.write(compressor.compress(event + b"\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH))
            await asyncio.sleep(0.002)
        await response.write(compressor.flush())
        return response

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"{")
        while True:
            await asyncio.sleep(0.2)
            await response.write(b" ")
