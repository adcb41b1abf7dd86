"""`python -m launchers up | down | status`: the vLLM servers one after another, then the gateway, then stop.

vLLM instances sharing a card must start one at a time (each charges the other's loading to itself while it
profiles memory; see vLLM's docs on several servers per GPU), so each server must answer `GET /health` 200 before
the next starts. Every process runs in its own process group (vLLM's engine and workers are its children),
logs to `<log-dir>/<name>.log`, and is recorded in `<log-dir>/launchers-state.json` for `down` and `status`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.models.memory_plan import Plan
from gateway.models.registry import ModelConfig
from launchers import run_state
from launchers.engines import prepare_server
from launchers.errors import LauncherError
from launchers.ports import in_use, pick_another
from launchers.process_group import Group, is_running, proc_start, spawn, stop_groups
from launchers.run_state import Kind, ProcessRecord, RunState, read_state, remove_state, state_path, uptime_text
from launchers.serve_args import lowered_pixel_caps, server_command
from launchers.startup_log import read_from, telling_line

SERVER_HOST = "127.0.0.1"  # the servers are private to this machine; the gateway is the public address
STOP_GRACE_S = 10.0
GATEWAY_READY_TIMEOUT_S = 60.0
_POLL_S = 0.25


class _Interrupted(Exception):
    """SIGINT/SIGTERM arrived while starting."""


@dataclass
class _Started:
    group: Group
    record: ProcessRecord
    log_offset: int


class Stack:
    """The servers and the gateway of one `up`; `start` brings them up in order, `stop` takes them all down."""

    def __init__(
        self,
        *,
        log_dir: Path,
        gateway_port: int,
        startup_timeout_s: float,
        grace_s: float = STOP_GRACE_S,
        stop_requested: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.state_file = state_path(log_dir)
        self.gateway_port = gateway_port
        self.startup_timeout_s = startup_timeout_s
        self.grace_s = grace_s
        self.stop_requested = stop_requested or threading.Event()
        self.env = dict(os.environ if env is None else env)
        self.started: list[_Started] = []
        pid = os.getpid()
        me = ProcessRecord("up", "supervisor", pid, None, None, None, time.time(), proc_start(pid))
        self.state = RunState(supervisor=me)

    def start(self, plan: Plan, configs: Mapping[str, ModelConfig]) -> None:
        """Each server until healthy, then the gateway until ready; LauncherError (nothing stopped) if one fails."""
        upstreams = {}
        for model in plan.models:
            config = configs[model.name]
            port = _serving_port(config)
            argv = server_command(config, model, host=SERVER_HOST, port=port)
            health = prepare_server(config)
            self._launch(model.name, "server", argv, port, health, self.env, self.startup_timeout_s)
            upstreams[model.name] = f"http://{SERVER_HOST}:{port}/v1"
        gateway_env = {
            **self.env,
            "GATEWAY_PORT": str(self.gateway_port),
            "GATEWAY_MODELS": ",".join(upstreams),
            "GATEWAY_UPSTREAMS": json.dumps(upstreams),
            # Pages must be resized to the caps the servers run with, or the boxes would not map back.
            "GATEWAY_MODEL_MAX_PIXELS": json.dumps(lowered_pixel_caps(plan, configs)),
        }
        argv = [sys.executable, "-m", "gateway"]
        self._launch("gateway", "gateway", argv, self.gateway_port, "/ready", gateway_env, GATEWAY_READY_TIMEOUT_S)

    def _launch(
        self, name: str, kind: Kind, argv: list[str], port: int, path: str, env: Mapping[str, str], timeout_s: float
    ) -> None:
        log = self.log_dir / f"{name}.log"
        print(f"up: starting {name} on port {port} (log: {log})", flush=True)
        process, offset = spawn(argv, log_path=log, env=env)
        url = f"http://127.0.0.1:{port}{path}"
        record = ProcessRecord(name, kind, process.pid, port, url, str(log), time.time(), proc_start(process.pid))
        self.started.append(_Started(Group(name, process.pid, record.proc_start, process), record, offset))
        self.state.processes.append(record)
        run_state.write_state(self.state_file, self.state)
        began = time.monotonic()
        while _status_code(url) != 200:
            if self.stop_requested.is_set():
                raise _Interrupted
            status = process.poll()
            if status is not None:
                raise LauncherError(f"{name} exited with status {status} while starting: {self._why(log, offset)}")
            if time.monotonic() - began > timeout_s:
                why = self._why(log, offset)
                raise LauncherError(
                    f"{name} did not answer {path} with 200 within {timeout_s:g} s; its log says: {why}"
                )
            self.stop_requested.wait(_POLL_S)
        print(f"up: {name} answers {path} after {time.monotonic() - began:.1f} s", flush=True)

    @staticmethod
    def _why(log: Path, offset: int) -> str:
        line, hint = telling_line(read_from(log, offset))
        return (line or "(no output)") + (f" [{hint}]" if hint else "") + f" (log: {log})"

    def watch(self) -> int:
        """Until SIGINT/SIGTERM (0) or until a process exits on its own (1)."""
        while not self.stop_requested.wait(0.5):
            for started in self.started:
                status = started.group.process.poll() if started.group.process else None
                if status is not None:
                    why = self._why(Path(started.record.log or ""), started.log_offset)
                    print(f"up: {started.record.name} exited with status {status}: {why}", file=sys.stderr)
                    print("up: stopping everything", file=sys.stderr, flush=True)
                    return 1
        return 0

    def stop(self) -> None:
        """SIGTERM the gateway, then the servers in reverse order; SIGKILL what outlives the grace period."""
        groups = [started.group for started in reversed(self.started)]
        killed = stop_groups(groups, grace_s=self.grace_s)
        if killed:
            print(f"up: killed {', '.join(killed)} (still running {self.grace_s:g} s after SIGTERM)", file=sys.stderr)
        if self.started:
            print(f"up: stopped {', '.join(s.record.name for s in reversed(self.started))}", flush=True)
        remove_state(self.state_file)

    def summary(self) -> str:
        parts = [f"{s.record.name} :{s.record.port} pid {s.record.pid}" for s in self.started]
        return f"up: running {'; '.join(parts)}. Ctrl-C or `python -m launchers down` stops everything."


def serve_stack(
    plan: Plan,
    configs: Mapping[str, ModelConfig],
    *,
    log_dir: Path,
    gateway_port: int,
    startup_timeout_s: float,
    grace_s: float = STOP_GRACE_S,
) -> int:
    """Check, start, stay in the foreground, and stop everything on SIGINT/SIGTERM or when a process dies."""
    if not plan.fits:
        fixes = "; ".join(plan.fixes) or "fewer models or a bigger card"
        raise LauncherError(f"the plan does not fit on a {plan.gpu_mem_gib:g} GiB card; fixes: {fixes}")
    _refuse_if_running(state_path(log_dir))
    _refuse_busy_ports([(_serving_port(configs[m.name]), m.name) for m in plan.models] + [(gateway_port, "gateway")])
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in handled}
    stack = Stack(
        log_dir=log_dir,
        gateway_port=gateway_port,
        startup_timeout_s=startup_timeout_s,
        grace_s=grace_s,
        stop_requested=stop,
    )
    try:
        try:
            stack.start(plan, configs)
        except _Interrupted:
            print("up: stopped before everything was up", file=sys.stderr)
            return 0
        print(stack.summary(), flush=True)
        return stack.watch()
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_up(args: argparse.Namespace) -> int:
    if shutil.which("vllm") is None:
        raise LauncherError("vllm is not installed: pip install '.[serve]'")
    _refuse_if_running(state_path(args.log_dir))
    from launchers.planner import resolve_plan

    plan, configs = resolve_plan(profile=args.profile, gpu_mem=args.gpu_mem, models=args.models or None)
    return serve_stack(
        plan,
        configs,
        log_dir=Path(args.log_dir),
        gateway_port=args.gateway_port,
        startup_timeout_s=args.startup_timeout,
    )


def run_down(args: argparse.Namespace) -> int:
    """Ask the running `up` to stop everything; stop whatever is left ourselves."""
    path = state_path(args.log_dir)
    state = read_state(path)
    if state is None:
        print(f"down: nothing to stop (no {path})")
        return 0
    up = state.supervisor
    if is_running(up.pid, up.proc_start):
        os.kill(up.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S + 10.0
        while is_running(up.pid, up.proc_start) and time.monotonic() < deadline:
            time.sleep(0.1)
    groups = [Group(record.name, record.pid, record.proc_start) for record in reversed(state.processes)]
    killed = stop_groups(groups, grace_s=STOP_GRACE_S)
    remove_state(path)
    names = ", ".join(record.name for record in state.processes) or "nothing"
    print(f"down: stopped {names}" + (f" (killed {', '.join(killed)})" if killed else ""))
    return 0


def run_status(args: argparse.Namespace) -> int:
    """One line per process; 0 when everything runs and answers 200, else 1."""
    path = state_path(args.log_dir)
    state = read_state(path)
    if state is None:
        print(f"status: nothing started by `up` runs (no {path})")
        return 1
    up = state.supervisor
    healthy = is_running(up.pid, up.proc_start)
    print(f"{'up':<16} {'supervisor':<10} pid {up.pid:<8} {'alive' if healthy else 'GONE'}")
    for record in state.processes:
        alive = is_running(record.pid, record.proc_start)
        answer = _status_code(record.check_url) if alive and record.check_url else None
        healthy = healthy and alive and answer == 200
        check = (record.check_url or "").rsplit("/", 1)[-1]
        uptime = uptime_text(time.time() - record.started_at)
        print(
            f"{record.name:<16} {record.kind:<10} pid {record.pid:<8} {'alive' if alive else 'GONE':<6} "
            f"port {record.port}  /{check} {answer or 'no answer'}  up {uptime}"
        )
    return 0 if healthy else 1


def _serving_port(config: ModelConfig) -> int:
    if config.serving is None:
        raise LauncherError(f"{config.name} has no engine that serves it: {config.unsupported_reason}")
    return config.serving.port


def _refuse_if_running(path: Path) -> None:
    state = read_state(path)
    if state is None:
        return
    if is_running(state.supervisor.pid, state.supervisor.proc_start):
        raise LauncherError(f"`up` already runs (pid {state.supervisor.pid}): `python -m launchers down` first")
    groups = [Group(record.name, record.pid, record.proc_start) for record in state.processes]
    leftovers = [group.name for group in groups if group.ours() and group.alive()]
    if leftovers:
        raise LauncherError(f"{', '.join(leftovers)} from an earlier `up` still run: `python -m launchers down` first")
    remove_state(path)


def _refuse_busy_ports(ports: list[tuple[int, str]]) -> None:
    seen: dict[int, str] = {}
    for port, name in ports:
        if port in seen:
            raise LauncherError(f"{name} and {seen[port]} are both configured for port {port}")
        seen[port] = name
    busy = [(port, name) for port, name in ports if in_use(port)]
    if busy:
        listed = ", ".join(f"{port} ({name})" for port, name in busy)
        advice = "stop what listens there first"
        if any(name == "gateway" for _, name in busy):
            gateway_port = next(port for port, name in busy if name == "gateway")
            advice += ", or " + pick_another(gateway_port, "make up", "python -m launchers up --gateway-port")
        raise LauncherError(f"port already in use: {listed}; {advice}")


def _status_code(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None
