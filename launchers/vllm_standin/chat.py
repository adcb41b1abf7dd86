"""`POST /v1/chat/completions`: faults, validation, the slot queue, then a stream or one body.

Timing follows vLLM: a stream's 200 headers go out at once (before queueing, as Starlette's
StreamingResponse does), the role chunk after the time to first token, then content chunks.
A client that leaves is detected by cancellation (the server runs with handler_cancellation,
like vLLM's `with_cancellation`) or by a failed write, and recorded as aborted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import orjson
from aiohttp import web

from . import shapes
from .chat_request import ChatRequest, RequestError, parse_chat_request, split_tokens, validation_error
from .config import StandinConfig
from .repetition import parse_repetition_detection, repetition_end
from .state import RecordedRequest, StandinState
from .structured import structured_reply

Finish = Literal["stop", "length", "repetition"]

_GARBAGE = b"<html><body>stand-in garbage: this body is not JSON</body></html>\n"
INVALID_JSON = object()  # marks a request body that did not parse


class ChatCompletions:
    """The chat completions handler of one stand-in app."""

    def __init__(self, config: StandinConfig, state: StandinState) -> None:
        self.config = config
        self.state = state
        self._default_tokens = split_tokens(config.reply)  # split once: most requests reuse it

    async def handle(self, request: web.Request, rec: RecordedRequest, body: object) -> web.StreamResponse:
        """Answer one request whose JSON body the middleware already parsed."""
        state = self.state
        # Faults come first: a crashed or broken server validates nothing.
        if state.take_fault("drop_next"):
            return self._drop(request, rec)
        if state.take_fault("fail_next"):
            status = state.faults.fail_status
            message = f"Simulated failure injected by the vLLM stand-in (HTTP {status})."
            return self._error(rec, RequestError(status, message, shapes.error_type_for(status)))
        if state.take_fault("garbage_next"):
            state.finish(rec, "completed", 200)
            return web.Response(body=_GARBAGE, content_type="text/plain")
        try:
            if body is INVALID_JSON or body is None:
                kind = "missing" if body is None else "json_invalid"
                raise validation_error(kind, "body", None if body is None else {})
            chat = parse_chat_request(body, self.config)
            repetition = parse_repetition_detection(body)
            tokens = self._reply_tokens(body)
        except RequestError as exc:
            return self._error(rec, exc)
        finish_reason: Finish = "length" if len(tokens) > chat.max_tokens else "stop"
        tokens = tokens[: chat.max_tokens]
        looped = None if repetition is None else repetition_end(tokens, repetition, chat.max_tokens)
        if looped is not None:  # vLLM keeps what it generated up to the token that completed the loop
            finish_reason, tokens = "repetition", tokens[:looped]
        if chat.stream:
            return await self._stream(request, rec, chat, tokens, finish_reason)
        return await self._complete(request, rec, chat, tokens, finish_reason)

    def _reply_tokens(self, body: Any) -> list[str]:
        constrained = structured_reply(body)  # vLLM constrains any model's decoding, whatever it would say
        if constrained is not None:
            return split_tokens(constrained)
        responder = self.config.responder
        if responder is None:
            return self._default_tokens
        try:
            return split_tokens(responder(body))
        except Exception as exc:  # a test's responder bug surfaces as vLLM's generic 500
            raise RequestError(500, f"stand-in responder failed: {exc!r}", "InternalServerError") from exc

    async def _complete(
        self, request: web.Request, rec: RecordedRequest, chat: ChatRequest, tokens: list[str], finish: Finish
    ) -> web.StreamResponse:
        state = self.state
        config = self.config
        resp = web.Response(content_type="application/json")
        try:
            await state.acquire_slot()
            try:
                state.count_tokens(prompt=chat.prompt_tokens)
                delay = config.latency_s + state.faults.extra_latency_s
                if config.tokens_per_s:
                    delay += len(tokens) / config.tokens_per_s
                if delay > 0:
                    await asyncio.sleep(delay)
                state.count_tokens(generation=len(tokens))
            finally:
                state.release_slot()
            body = shapes.chat_completion(
                completion_id(request),
                int(time.time()),
                config.served_name,
                "".join(tokens),
                finish,
                chat.prompt_tokens,
                len(tokens),
            )
            resp.body = orjson.dumps(body)
            await resp.prepare(request)
            await resp.write_eof()
        except asyncio.CancelledError:
            self._abort(rec)
            raise
        except ConnectionResetError:
            self._abort(rec)
            return resp
        state.count_finished(finish)
        state.finish(rec, "completed", 200)
        return resp

    async def _stream(
        self, request: web.Request, rec: RecordedRequest, chat: ChatRequest, tokens: list[str], finish: Finish
    ) -> web.StreamResponse:
        state = self.state
        config = self.config
        faults = state.faults
        error_after, cut_after = faults.stream_error_after, faults.stream_cut_after  # fixed per stream
        cid, created, model = completion_id(request), int(time.time()), config.served_name
        step = config.chunk_tokens
        pieces = [tokens[i : i + step] for i in range(0, len(tokens), step)] or [[]]
        paced = config.tokens_per_s > 0
        loop = asyncio.get_running_loop()

        def event(delta: dict[str, Any], reason: Finish | None, generated: int) -> bytes:
            usage = shapes.usage(chat.prompt_tokens, generated, details=False) if chat.continuous_usage else None
            chunk = shapes.chat_chunk(
                cid, created, model, delta, reason, with_usage=chat.include_usage, usage_body=usage
            )
            return shapes.sse(chunk)

        resp = web.StreamResponse(status=200)
        resp.content_type = "text/event-stream"
        resp.charset = "utf-8"
        pending: list[bytes] = []  # unpaced streams go out in one write: same bytes, fewer syscalls
        outcome = "completed"
        admitted = False
        try:
            await resp.prepare(request)
            await state.acquire_slot()
            admitted = True
            state.count_tokens(prompt=chat.prompt_tokens)
            delay = config.latency_s + faults.extra_latency_s
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(event({"role": "assistant", "content": ""}, None, 0))
            started, sent = loop.time(), 0
            for index, piece in enumerate(pieces):
                if index == error_after:
                    message = "Internal server error"  # what vLLM sends when generation fails
                    error = shapes.stream_error_body(message, "InternalServerError", 500, config.error_shape)
                    pending += [shapes.sse(error), shapes.SSE_DONE]
                    outcome = "error"
                    break
                if index == cut_after:
                    outcome = "dropped"
                    break
                sent += len(piece)
                if paced:
                    await resp.write(b"".join(pending))
                    pending.clear()
                    wait = started + sent / config.tokens_per_s - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                last = index == len(pieces) - 1
                pending.append(event({"content": "".join(piece)}, finish if last else None, sent))
                state.count_tokens(generation=len(piece))
            else:
                if chat.include_usage:
                    final = shapes.usage(chat.prompt_tokens, sent, details=False)
                    pending.append(shapes.sse(shapes.usage_chunk(cid, created, model, final)))
                pending.append(shapes.SSE_DONE)
            await resp.write(b"".join(pending))
            if outcome == "dropped":
                # Close without the final chunk so the client sees a truncated body.
                if request.transport is not None:
                    request.transport.close()
                state.finish(rec, "dropped")
                return resp
            await resp.write_eof()
        except asyncio.CancelledError:
            self._abort(rec)
            raise
        except ConnectionResetError:
            self._abort(rec)
            return resp
        finally:
            if admitted:
                state.release_slot()
        if outcome == "completed":
            state.count_finished(finish)
        state.finish(rec, "completed" if outcome == "completed" else "error", 200)
        return resp

    def _drop(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        # Closing before any byte is sent looks like a crashed server to the client. aiohttp
        # then fails to write the returned response and ignores that quietly.
        if request.transport is not None:
            request.transport.close()
        self.state.finish(rec, "dropped")
        return web.Response()

    def _error(self, rec: RecordedRequest, exc: RequestError) -> web.Response:
        body = shapes.error_body(exc.message, exc.err_type, exc.status, exc.param, self.config.error_shape)
        self.state.finish(rec, "error", exc.status)
        return web.Response(body=orjson.dumps(body), status=exc.status, content_type="application/json")

    def _abort(self, rec: RecordedRequest) -> None:
        # vLLM counts no abort in vllm:request_success_total (its "abort" series stays at 0).
        self.state.finish(rec, "aborted")


def completion_id(request: web.Request) -> str:
    """vLLM's completion id: the client's X-Request-Id when it sent one, else random hex."""
    return f"chatcmpl-{request.headers.get('X-Request-Id') or shapes.random_hex()}"
