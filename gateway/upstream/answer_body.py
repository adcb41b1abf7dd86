"""Reading an upstream's answer with bounds: never more than a cap in memory, never inflated past it.

A broken or hostile upstream (any OpenAI-compatible server can be one) could otherwise exhaust the gateway: a
300 MB answer cost +500 MB of RSS, and a 1 MB gzip body inflated to 1 GB. So the gateway asks for no
compression (`Accept-Encoding: identity`, set on the session) and undoes any it gets anyway itself, a bounded
piece at a time (`zlib`'s `max_length`), so what it holds is what it counted; non-streamed answers stop at
GATEWAY_MAX_UPSTREAM_ANSWER_BYTES (a 502 naming the setting).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import aiohttp

from gateway.errors import UpstreamAnswerTooLarge, UpstreamProtocolError

PIECE_BYTES = 64 * 1024  # the most one inflate step may produce
_IDENTITY = ("", "identity")
_ZLIB_FORMATS = ("gzip", "x-gzip", "deflate")


def answer_pieces(response: aiohttp.ClientResponse, *, model: str) -> AsyncIterator[bytes]:
    """The answer's bytes as they arrive, with any Content-Encoding undone in pieces of at most PIECE_BYTES.

    An unsupported encoding raises UpstreamProtocolError here, when called. The usual uncompressed answer is
    aiohttp's own iterator, not wrapped: a stream relays every event through it."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in _IDENTITY:
        return response.content.iter_any()
    if encoding not in _ZLIB_FORMATS:
        raise UpstreamProtocolError(
            f"model {model}: the upstream answered with unsupported Content-Encoding {encoding}"
        )
    return _inflated(response, model=model, encoding=encoding)


async def _inflated(response: aiohttp.ClientResponse, *, model: str, encoding: str) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib wrapper, told apart by its header
    try:
        async for chunk in response.content.iter_any():
            data = chunk
            while data:
                piece = inflater.decompress(data, PIECE_BYTES)
                if piece:
                    yield piece
                data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise UpstreamProtocolError(f"model {model}: the upstream's {encoding} answer is corrupt ({exc})") from None


async def read_capped(response: aiohttp.ClientResponse, *, model: str, limit: int) -> bytes:
    """The whole answer, or UpstreamAnswerTooLarge (502) as soon as it passes `limit` bytes (decoded)."""
    declared = response.content_length
    if declared is not None and declared > limit and response.headers.get("Content-Encoding", "") in _IDENTITY:
        raise too_large(model, "answer", limit, "GATEWAY_MAX_UPSTREAM_ANSWER_BYTES")
    body = bytearray()
    async for piece in answer_pieces(response, model=model):
        body += piece
        if len(body) > limit:
            raise too_large(model, "answer", limit, "GATEWAY_MAX_UPSTREAM_ANSWER_BYTES")
    return bytes(body)


def too_large(model: str, what: str, limit: int, setting: str) -> UpstreamAnswerTooLarge:
    return UpstreamAnswerTooLarge(f"model {model}: the upstream's {what} exceeds {limit:,} bytes ({setting})")
