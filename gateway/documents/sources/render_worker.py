"""The body of one render worker process: take a task from the pipe, run it, send back its result or error.

A worker runs one task at a time, so the pool can kill exactly the worker drawing a page nobody waits for any
more (its request left or hit its deadline) or one over the per-page budget. Three guards are set before any
task runs, because a hostile PDF can make PDFium draw for minutes and allocate hundreds of MB per page:

* an address-space ceiling (RLIMIT_AS), so a runaway page fails its own allocation (MemoryError, or PDFium
  aborting the worker) instead of pushing the host into swap or the OOM killer's hands;
* PR_SET_PDEATHSIG: the kernel SIGKILLs the worker when the gateway dies, even by SIGKILL, so no orphan keeps
  drawing (the parent pid is checked once after setting it, in case the gateway died in between);
* SIGINT ignored: Ctrl-C reaches the whole process group, and the gateway stops its workers itself.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux; elsewhere nothing happens)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux / no prctl
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def limit_memory(max_bytes: int | None) -> None:
    """Cap this process's address space; allocations past it fail (MemoryError in Python, NULL in PDFium)."""
    if max_bytes is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = max_bytes if hard == resource.RLIM_INFINITY else min(max_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))


def serve(conn: Connection, parent_pid: int, max_bytes: int | None) -> None:
    """Worker main loop (the spawned process's target): one (function, args) at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    limit_memory(max_bytes)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        outcome: tuple[str, Any]
        try:
            outcome = ("ok", fn(*args))
        except BaseException as exc:  # sent back and raised in the gateway; the worker itself carries on
            outcome = ("error", exc)
        try:
            conn.send(outcome)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the result or error does not pickle: say so rather than die silently
            conn.send(("error", RuntimeError(f"render worker could not send its result back: {exc!r}")))
