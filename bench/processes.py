"""Start, probe, measure and stop the processes under test.

Everything here is bounded in time and addresses only 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Ask the kernel for a free loopback port (tiny race before the child binds it; fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def pin_prefix(cpu: int | None) -> list[str]:
    """`taskset -c CPU` prefix, or nothing when pinning is off/unavailable."""
    if cpu is None:
        return []
    exe = shutil.which("taskset")
    return [exe, "-c", str(cpu)] if exe else []


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float
    exit_code: int | None = field(default=None)
    # True when it was already gone before we stopped it: crashed, or killed by something else.
    died_early: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid


def spawn(name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> Proc:
    """Start a server with output to a log file.

    start_new_session=True keeps a terminal Ctrl-C from reaching the child directly, so the
    harness (not the signal) decides the stop order and can still measure/clean up.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name=name, popen=popen, log_path=log_path, spawned_at=t0)


def stop(proc: Proc, grace_s: float = 5.0) -> int | None:
    """SIGTERM by PID, wait, then SIGKILL the process group we created. Returns the exit code."""
    proc.died_early = proc.popen.poll() is not None
    if not proc.died_early:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            # The group id equals the PID (new session), so this only hits what we started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=grace_s)
    # Workers that outlived their parent are still in the group we created: kill them by PID.
    for pid in _group_members(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.exit_code = proc.popen.returncode
    return proc.exit_code


def log_tail(proc: Proc, n: int = 20) -> str:
    try:
        lines = proc.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def http_status(port: int, path: str, timeout_s: float = 1.0) -> int | None:
    """GET a loopback path; None when the server is not accepting yet."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def wait_http_200(proc: Proc, port: int, path: str, timeout_s: float) -> float:
    """Poll every 10 ms until `path` answers 200; seconds since spawn. Raises if the child dies."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before {path} was 200:\n{log_tail(proc)}"
            )
        if http_status(port, path, timeout_s=0.5) == 200:
            return time.perf_counter() - proc.spawned_at
        time.sleep(0.01)
    raise TimeoutError(f"{proc.name}: {path} not 200 within {timeout_s:.0f} s:\n{log_tail(proc)}")


def _ppid_map() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: fields start after the last ')'.
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # stat field 5: pgrp
                members.append(int(entry.name))
    return members


def process_tree(pid: int) -> list[int]:
    """pid plus all its descendants (uvicorn/gunicorn workers, if the gateway uses any)."""
    ppids = _ppid_map()
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in ppids.items() if pp == parent]
        tree.extend(kids)
        frontier.extend(kids)
    return tree


def proc_status_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pids: list[int]) -> int:
    """Sum of VmRSS (kB) over pids; vanished pids count as 0."""
    return sum(proc_status_kb(pid, "VmRSS") for pid in pids)


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the given pids, in seconds (10 ms resolution)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return ticks / _CLK_TCK


class RssSampler:
    """Background sampler of a process tree's RSS; keeps the peak.

    A thread (not a process) because it sleeps 50 ms between two /proc reads: negligible CPU.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self._pid = pid
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_kb = 0

    def _run(self) -> None:
        pids = process_tree(self._pid)
        n = 0
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(pids))
            n += 1
            if n % 20 == 0:  # workers may be (re)spawned; rescanning /proc every tick would cost CPU
                pids = process_tree(self._pid)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def machine_cpu_s() -> dict[str, float]:
    """CPU seconds since boot, all CPUs, from /proc/stat: processes (user+nice+system), irq+softirq, steal.

    Kept apart because only the first can be compared with processes' own times: loopback traffic is largely
    processed in softirq (ours included), and steal is the hypervisor giving our CPUs to someone else.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return {
        "processes": (user + nice + system) / _CLK_TCK,
        "irq": (irq + softirq) / _CLK_TCK,
        "steal": steal / _CLK_TCK,
    }


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat; idle and iowait excluded)."""
    return sum(machine_cpu_s().values())


def own_cpu_s() -> float:
    """CPU seconds of this process plus its reaped children (wrk, SSE client, stopped servers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_idle(pids: list[int], timeout_s: float = 5.0, window_s: float = 0.1) -> float:
    """Block until `pids` burn at most one clock tick per window; returns the seconds waited.

    After wrk stops, servers may still chew on requests it abandoned (32 x 1 MB bodies take the
    stand-in a good 100 ms). wrk corrects for coordinated omission, so one such stall at the start
    of the next cell becomes hundreds of synthetic slow samples and a fake p99: let them settle first.
    """
    t0 = time.perf_counter()
    prev = cpu_seconds(pids)
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(window_s)
        now = cpu_seconds(pids)
        if now - prev <= 1.0 / _CLK_TCK:
            break
        prev = now
    return time.perf_counter() - t0
