"""The page render pool: a spawned process pool, one worker per CPU, that replaces itself if a worker dies.

PDFium is not thread-safe, so PDF pages render in processes (measurements in `gateway.documents.sources.pages`). Workers
are spawned, not forked: they inherit none of the gateway's threads, sockets or locks.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def render_workers() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a cpuset), at least 1."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - platforms without sched_getaffinity


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group; the gateway shuts the pool down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class RenderPool(concurrent.futures.Executor):
    """A spawned ProcessPoolExecutor, one worker per CPU, replaced by a fresh one when a worker dies."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or render_workers()
        # Created on first use: even an idle process pool starts multiprocessing's resource-tracker process
        # (~11 MB), which a gateway that never sees a PDF should not pay.
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
        )

    @property
    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        """The process pool in use now (started on first use; a new one after `replace_if_broken`)."""
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        return self.executor.submit(fn, *args, **kwargs)

    def replace_if_broken(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """After BrokenProcessPool: swap in a new pool once (concurrent callers see the same broken one)."""
        if self._pool is broken:
            self._pool = self._new_pool()
            broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def make_render_pool() -> RenderPool:
    """The page render pool, sized to the CPU. Create one at start-up; `shutdown()` it at the end."""
    return RenderPool()
