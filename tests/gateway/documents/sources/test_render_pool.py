"""The render pool stops what nobody waits for: cancelled or over-budget tasks kill their worker, workers have a
memory ceiling, die with the gateway, and shutdown does not wait for a render."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.documents.sources.render_pool import RenderPool, RenderTimedOut

TIMEOUT_S = 20  # every wait here is bounded; a spawned worker starts in well under a second


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # the second when it is reaped between open and read
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    render_pool = RenderPool(workers=1, max_bytes=512 * 1024 * 1024)
    yield render_pool
    render_pool.shutdown()


async def _busy_worker(pool: RenderPool, task: asyncio.Task[object]) -> int:
    await asyncio.sleep(0)  # the task takes its worker (spawned synchronously) on its first step
    assert not task.done()
    [pid] = pool.worker_pids()
    return pid


async def test_cancelling_a_task_kills_its_worker_and_the_next_task_gets_a_fresh_one(pool: RenderPool) -> None:
    task = asyncio.create_task(pool.run(time.sleep, 600))
    pid = await _busy_worker(pool, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(_wait_gone, pid)
    async with asyncio.timeout(TIMEOUT_S):
        fresh = await pool.run(os.getpid)
    assert fresh != pid


async def test_a_task_over_the_render_budget_is_stopped() -> None:
    pool = RenderPool(workers=1, task_timeout_s=0.5)
    try:
        task = asyncio.create_task(pool.run(time.sleep, 600))
        pid = await _busy_worker(pool, task)
        with pytest.raises(RenderTimedOut):
            async with asyncio.timeout(TIMEOUT_S):
                await task
        assert await asyncio.to_thread(_wait_gone, pid)
    finally:
        pool.shutdown()


async def test_a_worker_cannot_allocate_past_its_memory_ceiling(pool: RenderPool) -> None:
    with pytest.raises(MemoryError):
        async with asyncio.timeout(TIMEOUT_S):
            await pool.run(bytearray, 1024 * 1024 * 1024)  # twice the 512 MB ceiling
    async with asyncio.timeout(TIMEOUT_S):
        assert await pool.run(len, b"still works") == 11


async def test_shutdown_kills_a_render_still_running(pool: RenderPool) -> None:
    task = asyncio.create_task(pool.run(time.sleep, 600))
    pid = await _busy_worker(pool, task)
    pool.shutdown()
    assert not _alive(pid)
    with pytest.raises(Exception, match="died"):
        async with asyncio.timeout(TIMEOUT_S):
            await task


# A gateway stand-in that renders a page taking minutes, then is SIGKILLed: its worker must not outlive it. Written
# against the public API every version of the pool has had (make_render_pool, render_page).
_PARENT = """
import asyncio, sys
from gateway.documents.sources.pages import make_render_pool, open_document, render_page
from tests.pdfs import stroke_bomb_pdf

async def main():
    pool = make_render_pool()
    document = open_document(stroke_bomb_pdf(lines=400_000), param="file", max_pages=1)
    print("rendering", flush=True)
    await render_page(document, 1, pool=pool, max_pixels=64_000_000)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def test_workers_die_with_a_gateway_killed_by_sigkill(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    root = Path(__file__).resolve().parents[4]
    command = [sys.executable, str(script)]
    with subprocess.Popen(
        command, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE
    ) as parent:
        _kill_while_rendering(parent)


def _kill_while_rendering(parent: subprocess.Popen[bytes]) -> None:
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"rendering\n"
        deadline = time.monotonic() + TIMEOUT_S
        workers: set[int] = set()
        while not workers and time.monotonic() < deadline:  # the worker(s) and multiprocessing's resource tracker
            time.sleep(0.1)
            workers = {
                pid for pid in _children(parent.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            }
        assert workers, "the render worker never started"
        time.sleep(0.5)  # the worker is drawing now
        parent.send_signal(signal.SIGKILL)
        parent.wait(TIMEOUT_S)
        assert all(_wait_gone(pid) for pid in workers), "a render worker outlived the gateway"
    finally:
        parent.kill()
        parent.wait(TIMEOUT_S)
