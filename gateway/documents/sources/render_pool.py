"""The page render pool: a few spawned worker processes, one task each at a time, killed when not wanted.

PDFium is not thread-safe, so PDF pages render in processes (measurements in `gateway.documents.sources.pages`).
`concurrent.futures.ProcessPoolExecutor` was used before, but it cannot stop one task: a hostile PDF (0.5 MB,
millions of stroked lines) kept every worker drawing for minutes after its request had gone, other clients' PDFs
queued behind it, and shutdown waited for it. Here each worker is a spawned process with a pipe; a task's caller
waits on it, and when the caller is cancelled (client left, deadline, shutdown) or the task passes the per-page
budget, that worker is SIGKILLed and a fresh one is spawned on the next demand. A worker that dies (PDFium
crashed, or ran out of its memory ceiling) costs only the task it was running. Workers are spawned, not
forked: they inherit none of the gateway's threads, sockets or locks; `render_worker.py` sets their guards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

from gateway.documents.sources.render_worker import serve

_T = TypeVar("_T")
_REAP_S = 5.0  # a SIGKILLed worker is reaped within this (freeing 850 MB of page can take a moment)


class WorkerDied(Exception):
    """The worker running the task died (PDFium crashed, or the task exhausted the worker's memory ceiling)."""


class RenderTimedOut(Exception):
    """The task ran past the per-page render budget; its worker was killed. `args[0]` is the budget in seconds."""


def render_workers() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a cpuset), at least 1."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - platforms without sched_getaffinity


class _Worker:
    """One spawned process and the parent's end of its pipe."""

    def __init__(self, max_bytes: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=serve, args=(child, os.getpid(), max_bytes), daemon=True, name="gateway-render"
        )
        self.process.start()
        child.close()

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """Send a task and block until its outcome (in a thread). EOFError/OSError when the worker died."""
        self.conn.send((fn, args))
        return cast("tuple[str, Any]", self.conn.recv())

    def kill(self) -> None:
        """SIGKILL; a thread blocked reading its pipe then gets EOF. The pipe is closed by `reap`."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.process.kill()

    def reap(self, call: concurrent.futures.Future[Any] | None) -> None:
        """Wait for a killed worker to exit, and for the thread reading its pipe to let go; then close the pipe."""
        with contextlib.suppress(OSError, ValueError, AssertionError):
            self.process.join(_REAP_S)
        if call is not None:
            concurrent.futures.wait([call], _REAP_S)
        with contextlib.suppress(OSError):
            self.conn.close()


class RenderPool:
    """`await pool.run(fn, *args)` in one of `workers` processes; cancelling the await kills that worker.

    Workers start on first use (even one spawned process costs ~30 MB, which a gateway that never sees a PDF
    should not pay) and are kept for the next task unless a task was abandoned, timed out or broke them.
    """

    def __init__(
        self, workers: int | None = None, *, task_timeout_s: float | None = None, max_bytes: int | None = None
    ) -> None:
        self.workers = workers or render_workers()
        self.task_timeout_s = task_timeout_s  # the per-page render budget (GATEWAY_RENDER_TIMEOUT_S)
        self.max_bytes = max_bytes  # each worker's address-space ceiling (GATEWAY_RENDER_MAX_BYTES)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # One waiting thread per busy worker: blocking pipe reads never take the loop's default executor.
        self._threads = concurrent.futures.ThreadPoolExecutor(2 * self.workers + 2, thread_name_prefix="render-wait")
        self._closed = False

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes, idle or busy."""
        return [w.process.pid for w in [*self._idle, *self._busy] if w.process.pid is not None]

    async def run(self, fn: Callable[..., _T], /, *args: Any) -> _T:
        """Run `fn(*args)` in a worker; its exception is raised here. WorkerDied if the worker died, RenderTimedOut
        past the budget; on cancellation the worker is killed before CancelledError propagates."""
        if self._closed:
            raise RuntimeError("the render pool is shut down")
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one loop in the gateway; one per test in tests
            self._slots = (loop, asyncio.Semaphore(self.workers))
        async with self._slots[1]:
            # Spawned from the loop's thread, which lives as long as the gateway: PR_SET_PDEATHSIG fires when the
            # *thread* that started the worker exits, so a short-lived helper thread must never start one.
            worker = self._idle.pop() if self._idle else _Worker(self.max_bytes)
            self._busy.add(worker)
            keep = False
            call: concurrent.futures.Future[tuple[str, Any]] | None = None
            try:
                call = self._threads.submit(worker.call, fn, args)
                try:
                    async with asyncio.timeout(self.task_timeout_s):
                        status, value = await asyncio.wrap_future(call)
                except TimeoutError:
                    raise RenderTimedOut(self.task_timeout_s) from None
                except (EOFError, OSError):
                    raise WorkerDied(f"render worker {worker.process.pid} died") from None
                # A MemoryError leaves the worker's heap in an unknown state: start the next task afresh.
                keep = not isinstance(value, MemoryError)
                if status == "error":
                    raise value
                return cast(_T, value)
            finally:
                self._busy.discard(worker)
                if keep and not self._closed:
                    self._idle.append(worker)
                else:
                    self._retire(worker, call)

    def _retire(self, worker: _Worker, call: concurrent.futures.Future[Any] | None) -> None:
        worker.kill()
        if self._closed:
            worker.reap(None)
        else:
            self._threads.submit(worker.reap, call)

    def shutdown(self) -> None:
        """Kill every worker now, busy or not: a render still running at shutdown is past the grace period."""
        self._closed = True
        workers, self._idle = [*self._idle, *self._busy], []
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.reap(None)
        self._threads.shutdown(wait=False, cancel_futures=True)


def make_render_pool(*, task_timeout_s: float | None = None, max_bytes: int | None = None) -> RenderPool:
    """The page render pool, sized to the CPU. Create one at start-up; `shutdown()` it at the end."""
    return RenderPool(task_timeout_s=task_timeout_s, max_bytes=max_bytes)
