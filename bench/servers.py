"""Start the stand-in and the gateway under test, pinned to their CPUs, and time the gateway's start-up."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import payloads
from bench.processes import HOST, Proc, pin_prefix, process_tree, rss_kb, spawn, wait_http_200

ROOT = Path(__file__).resolve().parent.parent
# Two cores: the gateway gets one to itself; the stand-in and every load generator share the other,
# the same for direct and gateway runs, so "added" compares like with like.
STANDIN_CPU, GATEWAY_CPU = 0, 1


def decide_pinning(no_pin: bool) -> tuple[bool, str]:
    if no_pin:
        return False, "off (--no-pin)"
    if not pin_prefix(0):
        return False, "off (taskset not found)"
    if not {STANDIN_CPU, GATEWAY_CPU} <= os.sched_getaffinity(0):
        return False, "off (CPUs 0 and 1 not both available)"
    return True, (f"taskset: gateway on CPU {GATEWAY_CPU}; stand-in, wrk, SSE client and harness on CPU {STANDIN_CPU}")


def start_standin(port: int, cpu: int | None, logs: Path, procs: list[Proc]) -> Proc:
    argv = [
        *pin_prefix(cpu),
        sys.executable,
        "-m",
        "launchers.vllm_standin",
        "--host",
        HOST,
        "--port",
        str(port),
        "--model",
        payloads.MODEL,
        "--latency-ms",
        "0",
        "--tokens-per-s",
        "0",
        "--reply",
        payloads.REPLY,
    ]
    proc = spawn("stand-in", argv, dict(os.environ), ROOT, logs / "standin.log")
    procs.append(proc)  # registered before waiting, so a failed start is still stopped
    wait_http_200(proc, port, "/health", timeout_s=30)
    return proc


def start_gateway(
    port: int, upstream_port: int, cpu: int | None, logs: Path, procs: list[Proc]
) -> tuple[Proc, dict[str, Any]]:
    env = dict(os.environ)
    env.update(
        GATEWAY_HOST=HOST,
        GATEWAY_PORT=str(port),
        GATEWAY_MODELS=payloads.MODEL,
        GATEWAY_UPSTREAMS=orjson.dumps({payloads.MODEL: f"http://{HOST}:{upstream_port}/v1"}).decode(),
    )
    proc = spawn("gateway", [*pin_prefix(cpu), sys.executable, "-m", "gateway"], env, ROOT, logs / "gateway.log")
    procs.append(proc)
    t_health = wait_http_200(proc, port, "/health", timeout_s=30)
    t_ready = wait_http_200(proc, port, "/ready", timeout_s=30)
    time.sleep(2.0)  # "idle" = 2 s after ready, before any traffic
    pids = process_tree(proc.pid)
    startup = {
        "health_200_s": t_health,
        "ready_200_s": t_ready,
        "idle_rss_kb": rss_kb(pids),
        "processes": len(pids),
    }
    return proc, startup
