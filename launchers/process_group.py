"""Processes in their own process groups: start, recognise after a restart of `up`, stop with no orphan left.

vLLM's engine core and workers are children of `vllm serve`; signalling the whole group reaches them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from launchers.errors import LauncherError

_PROC = Path("/proc")


def spawn(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start `argv` in a new session (its own process group), stdout and stderr appended to `log_path`.

    Returns the process and the log offset where its output starts.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        offset = log.tell()
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise LauncherError(f"cannot start {argv[0]}: {exc}") from exc
    return process, offset


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None if there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rpartition(")")[2].split()


def proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None without /proc or if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_running(pid: int, started: int | None) -> bool:
    """The process exists, is not a zombie and (when `started` is known) is the one that started then."""
    if _PROC.is_dir():
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return started is None or int(fields[19]) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


@dataclass
class Group:
    """A process group to stop: its leader's pid (= pgid), and the Popen when this process is its parent."""

    name: str
    pid: int
    started: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def ours(self) -> bool:
        """Safe to signal: our own child, or the recorded leader, or (leader gone) what is left of its group.

        A pid cannot be reused while it still names a process group, so a group without its leader is ours.
        """
        if self.process is not None:
            return True
        if is_running(self.pid, None):
            return is_running(self.pid, self.started)
        return True

    def alive(self) -> bool:
        if self.process is not None and self.process.poll() is None:  # poll() also reaps a dead leader
            return True
        return bool(group_members(self.pid))


def _signal(group: Group, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group.pid, sig)


def stop_groups(groups: Sequence[Group], *, grace_s: float) -> list[str]:
    """SIGTERM each group in the order given, wait up to `grace_s`, SIGKILL what is left.

    Returns the names of the groups that needed SIGKILL.
    """
    targets = [group for group in groups if group.ours() and group.alive()]
    for group in targets:
        _signal(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(group.alive() for group in targets) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [group for group in targets if group.alive()]
    for group in killed:
        _signal(group, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(group.alive() for group in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [group.name for group in killed]
