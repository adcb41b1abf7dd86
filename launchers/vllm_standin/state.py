"""Live state of a stand-in: recorded requests, running/waiting counters, metrics totals, faults.

The server mutates it on its own event loop while tests read it from another thread, so every
change happens under one lock and wakes threads blocked in `wait_for`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .config import Faults, StandinConfig

Outcome = Literal["pending", "completed", "aborted", "error", "dropped"]
FinishReason = Literal["stop", "length", "abort", "repetition"]


@dataclass
class RecordedRequest:
    """One request that reached a `/v1/*` path, and how it ended.

    `headers` keys are lower-cased. `outcome` is "pending" until the response is over, then
    "completed" (fully sent), "aborted" (the client left first), "error" (an error status or a
    mid-stream error event) or "dropped" (the stand-in closed the connection on purpose).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    received_at: float
    outcome: Outcome = "pending"
    status: int | None = None
    finished_at: float | None = None

    @property
    def completed(self) -> bool:
        """True once the whole response was sent."""
        return self.outcome == "completed"

    @property
    def aborted(self) -> bool:
        """True if the client disconnected before the response finished."""
        return self.outcome == "aborted"

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data, for `GET /_standin/requests`."""
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
            "outcome": self.outcome,
            "status": self.status,
            "finished_at": self.finished_at,
        }


class StandinState:
    """Everything a test may want to observe or steer while the stand-in runs."""

    def __init__(self, max_num_seqs: int = 256, max_records: int = 10_000) -> None:
        self.faults = Faults()
        self.max_num_seqs = max_num_seqs
        # RLock: predicates given to wait_for run under the lock and may read properties.
        self._cond = threading.Condition(threading.RLock())
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._running = 0
        self._waiting = 0
        self._completed = 0
        self._aborted = 0
        self._prompt_tokens = 0
        self._generation_tokens = 0
        self._finished: dict[FinishReason, int] = {"stop": 0, "length": 0, "abort": 0, "repetition": 0}
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def from_config(cls, config: StandinConfig) -> StandinState:
        """A fresh state sized by the config's `max_num_seqs` and `max_records`."""
        return cls(max_num_seqs=config.max_num_seqs, max_records=config.max_records)

    # -- read side (any thread) -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._cond:
            return list(self._records)

    @property
    def running(self) -> int:
        """Requests holding one of the `max_num_seqs` slots."""
        return self._running

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return self._waiting

    @property
    def completed_count(self) -> int:
        """Chat requests whose response was fully sent (since the last clear)."""
        return self._completed

    @property
    def aborted_count(self) -> int:
        """Requests the client abandoned before the response finished (since the last clear)."""
        return self._aborted

    def metrics_snapshot(self) -> tuple[int, int, int, int, dict[FinishReason, int]]:
        """Consistent (running, waiting, prompt_tokens, generation_tokens, finished) totals."""
        with self._cond:
            return (
                self._running,
                self._waiting,
                self._prompt_tokens,
                self._generation_tokens,
                dict(self._finished),
            )

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block the calling thread until `predicate()` is true; False if `timeout` passed first.

        Call it from a thread other than the stand-in's loop (StandinServer runs its own); from
        async code use `await asyncio.to_thread(state.wait_for, predicate, timeout)`.
        """
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # -- control side -------------------------------------------------------------------------

    def clear_requests(self) -> int:
        """Forget the records and the completed/aborted counts; returns how many were dropped."""
        with self._cond:
            count = len(self._records)
            self._records.clear()
            self._completed = 0
            self._aborted = 0
            self._cond.notify_all()
            return count

    def take_fault(self, name: Literal["fail_next", "drop_next", "garbage_next"]) -> bool:
        """Consume one unit of a countdown fault; True if this request must suffer it."""
        with self._cond:
            left: int = getattr(self.faults, name)
            if left <= 0:
                return False
            setattr(self.faults, name, left - 1)
            return True

    # -- write side (the stand-in's loop) -----------------------------------------------------

    def record(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> RecordedRequest:
        """Start recording a request; finish it later with `finish`."""
        rec = RecordedRequest(method, path, headers, body, time.time())
        with self._cond:
            self._records.append(rec)
            self._cond.notify_all()
        return rec

    def finish(self, rec: RecordedRequest, outcome: Outcome, status: int | None = None) -> None:
        """Set a record's outcome once; later calls for the same record are ignored."""
        with self._cond:
            if rec.outcome != "pending":
                return
            rec.outcome = outcome
            rec.status = status
            rec.finished_at = time.time()
            if outcome == "completed":
                self._completed += 1
            elif outcome == "aborted":
                self._aborted += 1
            self._cond.notify_all()

    def count_tokens(self, prompt: int = 0, generation: int = 0) -> None:
        """Add to the `vllm:prompt_tokens` / `vllm:generation_tokens` counters."""
        with self._cond:
            self._prompt_tokens += prompt
            self._generation_tokens += generation

    def count_finished(self, reason: FinishReason) -> None:
        """Add one to `vllm:request_success{finished_reason=reason}`."""
        with self._cond:
            self._finished[reason] += 1

    def bind_loop(self, max_num_seqs: int) -> None:
        """Create the slot semaphore on the running loop (called at app start-up)."""
        self.max_num_seqs = max_num_seqs
        self._slots = asyncio.Semaphore(max_num_seqs)
        with self._cond:
            self._running = 0
            self._waiting = 0

    async def acquire_slot(self) -> None:
        """Wait for one of the `max_num_seqs` slots, counting as waiting meanwhile."""
        slots = self._slots
        if slots is None:
            raise RuntimeError("StandinState.bind_loop() was not called (the app has not started)")
        if slots.locked():
            self._add(waiting=1)
            try:
                await slots.acquire()
            finally:
                self._add(waiting=-1)
        else:
            await slots.acquire()  # free: returns without suspending
        self._add(running=1)

    def release_slot(self) -> None:
        """Give back a slot taken with `acquire_slot`."""
        self._add(running=-1)
        if self._slots is not None:
            self._slots.release()

    def _add(self, running: int = 0, waiting: int = 0) -> None:
        with self._cond:
            self._running += running
            self._waiting += waiting
            self._cond.notify_all()
