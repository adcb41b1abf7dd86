"""DeadlineClock: many deadlines on one timer, each firing once its time has passed, none after disarming."""

from __future__ import annotations

import asyncio

import pytest

from gateway.http.deadline_clock import DeadlineClock


async def _sleeper() -> None:
    await asyncio.sleep(10)


async def test_a_deadline_cancels_its_task_once_it_has_passed_and_not_before() -> None:
    clock = DeadlineClock(resolution_s=0.02)
    loop = asyncio.get_running_loop()
    early, late = asyncio.create_task(_sleeper()), asyncio.create_task(_sleeper())
    started = loop.time()
    first, second = clock.arm(early, 0.05), clock.arm(late, 0.3)
    with pytest.raises(asyncio.CancelledError):
        await early
    assert loop.time() - started >= 0.05
    assert first.fired
    assert not late.done()
    assert not second.fired
    with pytest.raises(asyncio.CancelledError):
        await late
    assert loop.time() - started >= 0.3


async def test_a_disarmed_deadline_never_fires_and_an_idle_clock_stops_ticking() -> None:
    clock = DeadlineClock(resolution_s=0.02)
    task = asyncio.create_task(_sleeper())
    armed = clock.arm(task, 0.05)
    clock.disarm(armed)
    clock.disarm(armed)  # idempotent
    await asyncio.sleep(0.15)
    assert not task.done()
    assert not armed.fired
    assert not clock.ticking  # nothing armed: no timer wakes the loop
    task.cancel()


async def test_a_deadline_shorter_than_the_resolution_fires_on_the_next_tick() -> None:
    clock = DeadlineClock(resolution_s=0.05)
    tasks = [asyncio.create_task(_sleeper()) for _ in range(3)]
    armed = [clock.arm(task, 0.001) for task in tasks]
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(task.cancelled() for task in tasks)
    assert all(a.fired for a in armed)
    clock.disarm(armed[0])  # after firing: a no-op
