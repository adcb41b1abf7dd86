"""Stop upstream work when the client goes away, so vLLM frees the sequence's slot at once.

Starlette notices a disconnect only when it next writes, and vLLM may think for many seconds before the
first token; so the gateway listens for `http.disconnect` itself while it waits on the upstream or relays
its stream. One watcher task per request, which cancels the request's own task: cheaper than running the
work in a second task and waiting on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed its connection before the answer was complete."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the ASGI server reports that the client has gone (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_unless_disconnected(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` in this task; if the client disconnects first, cancel it and raise ClientDisconnected.

    The cancellation runs `work`'s own cleanup (closing the upstream response), which is what makes vLLM
    abort the request.
    """
    task = asyncio.current_task()
    assert task is not None, "must run inside a task"
    gone = False

    async def watch() -> None:
        nonlocal gone
        await wait_for_disconnect(receive)
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        # No await between `work` finishing and `watcher.cancel()`, so the watcher cannot cancel this task
        # after the work is done.
        return await work
    except asyncio.CancelledError:
        if gone:
            task.uncancel()
            raise ClientDisconnected() from None
        raise  # its deadline, or the server's shutdown: gateway/http/request_deadline.py answers both
    finally:
        watcher.cancel()
