"""The decoded-pixel budget: pages past it wait their turn, in order, and give up with a 503 after the wait limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import _imaging as pillow_core

from gateway.app import create_app
from gateway.documents.pixel_budget import PILLOW_BLOCK_BYTES, PixelBudget, return_freed_memory
from gateway.errors import ServerBusy
from gateway.settings import Settings


async def test_a_page_that_does_not_fit_waits_for_room() -> None:
    budget = PixelBudget(100, wait_s=10)
    order: list[str] = []

    async def page(name: str, pixels: int, hold: asyncio.Event) -> None:
        async with budget.hold(pixels):
            order.append(name)
            await hold.wait()

    first_done, second_done = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(page("first", 70, first_done))
    await asyncio.sleep(0)
    second = asyncio.create_task(page("second", 70, second_done))
    await asyncio.sleep(0.05)
    assert order == ["first"]
    first_done.set()
    second_done.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert order == ["first", "second"]
    assert budget.in_use == 0


async def test_past_the_wait_limit_a_page_gets_a_503_with_retry_after() -> None:
    budget = PixelBudget(100, wait_s=0.1)
    async with budget.hold(100):
        with pytest.raises(ServerBusy, match="GATEWAY_DECODE_PIXEL_BUDGET") as caught:
            async with budget.hold(1):
                pass
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "1"}
    assert budget.in_use == 0


async def test_a_page_larger_than_the_whole_budget_runs_alone() -> None:
    budget = PixelBudget(100, wait_s=1)
    async with budget.hold(10_000):
        assert budget.in_use == 100
    assert budget.in_use == 0


async def test_a_cancelled_waiter_gives_nothing_away() -> None:
    budget = PixelBudget(100, wait_s=10)
    async with budget.hold(100):
        waiter = asyncio.create_task(budget.hold(50).__aenter__())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert budget.in_use == 0
    async with budget.hold(100):
        pass


def test_returning_freed_memory_is_safe_to_call() -> None:
    return_freed_memory()


def test_the_gateway_makes_pillow_allocate_blocks_glibc_always_maps(tmp_path: Path) -> None:
    """64 MB blocks, above glibc's 32 MB dynamic mmap ceiling: a freed image goes back to the system at once."""
    pillow_core.set_block_size(16 * 1024 * 1024)  # Pillow's default
    create_app(Settings(models=["qwen3-vl-2b"], store_path=tmp_path / "store.sqlite3"))
    assert pillow_core.get_block_size() == PILLOW_BLOCK_BYTES > 32 * 1024 * 1024
