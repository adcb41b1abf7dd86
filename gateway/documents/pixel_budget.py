"""A budget of decoded image pixels in flight across all requests, and giving freed memory back to the system.

Measured with `python -m bench.memory_bombs`: a 73 KB 7999x7999 PNG (under the 64 MP upload cap) raised the
gateway's RSS by ~450 MB at its peak and left 100-230 MB behind; eight at once took 3 GB. Pages therefore hold
their decoded pixels (the header's width x height, or the model size a PDF page is drawn at) against one budget
(GATEWAY_DECODE_PIXEL_BUDGET) while they are decoded, resized and encoded; past it they wait, up to
GATEWAY_DECODE_WAIT_S, then get a 503 with Retry-After. A page larger than the whole budget waits for all of it,
so it still runs, alone. glibc keeps freed heap in its arenas (each worker thread has its own), so once no
decode is in flight the gateway asks it to hand free pages back (`malloc_trim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import math
from collections.abc import AsyncIterator
from typing import Any

from PIL import _imaging as pillow_core  # Pillow's C core: the block allocator's settings

from gateway.errors import ServerBusy


class PixelBudget:
    """`async with budget.hold(pixels):` around a page's decode; FIFO, so a large page is not starved."""

    def __init__(self, total: int, wait_s: float) -> None:
        self.total = total
        self.wait_s = wait_s
        self.in_use = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        charge = min(max(1, pixels), self.total)
        await self._acquire(charge)
        try:
            yield
        finally:
            self.in_use -= charge
            self._wake()

    async def _acquire(self, charge: int) -> None:
        if not self._waiters and self.in_use + charge <= self.total:
            self.in_use += charge
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (charge, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():  # granted just as it gave up: give it back
                self.in_use -= charge
            if entry in self._waiters:
                self._waiters.remove(entry)
            self._wake()
            if isinstance(exc, TimeoutError):
                raise ServerBusy(
                    f"the gateway is decoding as many image pixels as it may at once (GATEWAY_DECODE_PIXEL_BUDGET "
                    f"= {self.total:,}) and this page waited {self.wait_s:g} s (GATEWAY_DECODE_WAIT_S); try again",
                    headers={"Retry-After": str(max(1, math.ceil(self.wait_s)))},
                ) from None
            raise

    def _wake(self) -> None:
        while self._waiters:
            charge, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.pop(0)
                continue
            if self.in_use + charge > self.total:
                return
            self.in_use += charge
            waiter.set_result(None)
            self._waiters.pop(0)


def _glibc(function: str) -> Any:
    with contextlib.suppress(OSError, AttributeError):
        name = ctypes.util.find_library("c")
        return getattr(ctypes.CDLL(name), function) if name else None
    return None  # pragma: no cover - not glibc


_TRIM = _glibc("malloc_trim")
# Pillow allocates an image in blocks of this size (16 MB by default). glibc serves a block from its heaps
# (which keep it after it is freed) unless it is at least its mmap threshold, which starts at 128 KB and rises
# with every mapped block freed, up to 32 MB: soon 16 MB blocks came from the heaps. Blocks larger than that
# ceiling are always mapped and go back to the system when freed, while glibc's thresholds stay dynamic for
# everything else. (Fixing the mmap threshold at 4 MB with mallopt did the same for images, but then a 1 MB
# chat body's 12 MB parse buffer, orjson's, was mapped and faulted in on every request: +1 ms of CPU each.)
PILLOW_BLOCK_BYTES = 64 * 1024 * 1024


def map_large_blocks() -> None:
    """Make Pillow allocate large images in blocks glibc always maps, so freeing them returns the memory.

    `python -m bench.memory_bombs`, eight 64 MP PNG decodes at once, RSS peak / 3 s after (idle 84 MB): Pillow's
    16 MB blocks 1,541 / 156 MB; the 4 MB mmap threshold 629 / 210 MB; 64 MB blocks 524-533 / 93-95 MB.
    """
    pillow_core.set_block_size(PILLOW_BLOCK_BYTES)


def return_freed_memory() -> None:
    """Ask glibc to give free heap pages back to the system (blocking, ms: call from a thread). No-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)
