"""Stop upstream work when the client goes away, so vLLM frees the sequence's slot at once.

Starlette notices a disconnect only when it next writes, and vLLM may think for many seconds before the
first token; so the gateway listens for `http.disconnect` itself while it waits on the upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was complete."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the ASGI server reports that the client has gone (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and so its upstream request) if the client disconnects first."""
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait((work_task, watch_task), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also reached when this request itself is cancelled (server shutdown): leave nothing running.
        if not work_task.done():
            work_task.cancel()
            await asyncio.gather(work_task, return_exceptions=True)
        watch_task.cancel()
    if work_task.cancelled():
        raise ClientDisconnected()
    return work_task.result()
