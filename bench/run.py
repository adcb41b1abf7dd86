"""`python -m bench.run`: gateway vs. direct-to-stand-in, side by side, on loopback. See bench/README.md."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench import loadgen, payloads, report
from bench.checks import sanity_check
from bench.processes import (
    HOST,
    Proc,
    RssSampler,
    cpu_seconds,
    free_port,
    log_tail,
    machine_busy_s,
    own_cpu_s,
    process_tree,
    rss_kb,
    stop,
    wait_idle,
)
from bench.servers import GATEWAY_CPU, ROOT, STANDIN_CPU, decide_pinning, start_gateway, start_standin

RESULTS = ROOT / "bench" / "results"
CONCURRENCIES = (1, 32)
# (scenario, body attribute on payloads.Bodies, tool). stream-ttfb reuses the stream body.
SCENARIOS = (
    ("chat", "chat", "wrk"),
    ("stream", "stream", "wrk"),
    ("stream-ttfb", "stream", "aiohttp"),
    ("image-1mb", "image", "wrk"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per cell (wrk: whole seconds)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved direct/gateway rounds")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per body and target")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 2 s cells")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 2.0
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds must be >= 1 and --duration >= 1")
    return args


def _sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so the `finally` that stops our children runs.
    raise SystemExit(128 + signum)


def _raise_nofile() -> None:
    # Children inherit it; c=32 needs few fds, but a low soft limit should never be what we measure.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard) if soft < hard else (soft, hard))


def measure(tool: str, url: str, lua: Path, body: Path, conc: int, duration: float, cpu: int | None) -> dict[str, Any]:
    if tool == "wrk":
        return loadgen.run_wrk(url, lua, body, conc, duration, cpu)
    return loadgen.run_sse_client(url, body, conc, duration, cpu, ROOT)


def run_rounds(
    args: argparse.Namespace,
    urls: dict[str, str],
    procs: list[Proc],
    lua: Path,
    bodies: payloads.Bodies,
    cpu: int | None,
    cells: list[loadgen.CellResult],
) -> None:
    gateway = next(p for p in procs if p.name == "gateway")
    for rnd in range(1, args.rounds + 1):
        print(f"-- round {rnd}/{args.rounds}", flush=True)
        gw_tree = process_tree(gateway.pid)  # once per round: picks up restarted workers, if any
        servers = [pid for proc in procs for pid in process_tree(proc.pid)]
        for scenario, body_attr, tool in SCENARIOS:
            for conc in CONCURRENCIES:
                # direct -> gateway for every cell, so drift hits both sides alike.
                for target in ("direct", "gateway"):
                    settle_s = wait_idle(servers)
                    cpu0 = cpu_seconds(gw_tree)
                    # Sample in direct runs too: the sampler's tiny CPU cost then weighs on both sides.
                    with RssSampler(gateway.pid) as sampler:
                        raw = measure(tool, urls[target], lua, getattr(bodies, body_attr), conc, args.duration, cpu)
                    cell = (
                        loadgen.wrk_cell(raw, scenario, conc, target, rnd)
                        if tool == "wrk"
                        else loadgen.sse_cell(raw, conc, target, rnd)
                    )
                    cell.settle_s = settle_s
                    if target == "gateway":
                        used = cpu_seconds(gw_tree) - cpu0
                        cell.gateway_cpu_us_per_req = used * 1e6 / cell.requests if cell.requests else None
                        cell.gateway_peak_rss_kb = sampler.peak_kb
                    _print_cell(cell, raw)
                    cells.append(cell)
                    for proc in procs:
                        if proc.popen.poll() is not None:
                            raise RuntimeError(
                                f"{proc.name} exited with {proc.popen.returncode} during {scenario} c={conc}"
                            )


def _print_cell(cell: loadgen.CellResult, raw: dict[str, Any]) -> None:
    flag = f"  ERRORS={cell.errors} {_error_hint(raw)}" if cell.errors else ""
    if cell.settle_s > 0.5:
        flag += f"  (waited {cell.settle_s:.1f} s for the servers to go idle first)"
    print(
        f"   {cell.scenario:<12} c={cell.concurrency:<3} {cell.target:<8} {cell.rps:>9,.0f} req/s"
        f"  p50 {cell.p50_ms:7.3f} ms  p99 {cell.p99_ms:7.3f} ms{flag}",
        flush=True,
    )


def _error_hint(raw: dict[str, Any]) -> str:
    keys = (
        "non2xx",
        "last_bad_status",
        "connect",
        "read",
        "write",
        "timeout",
        "exceptions",
        "no_done",
        "last_error",
    )
    return " ".join(f"{k}={raw[k]}" for k in keys if raw.get(k))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not loadgen.have_wrk():
        print(
            "bench: `wrk` is not installed; it is the load generator and there is no fallback.\n"
            "       Install it with:  sudo apt-get install wrk",
            file=sys.stderr,
        )
        return 2
    for module in ("gateway", "launchers/vllm_standin"):
        if not (ROOT / module / "__main__.py").exists():
            print(f"bench: {module}/__main__.py not found; nothing to benchmark yet.", file=sys.stderr)
            return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / ".lock").open("w") as lock:
        try:
            # Two benches at once would share 2 cores and each other's log files: refuse.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("bench: another bench run holds bench/results/.lock; wait for it.", file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, _sigterm)
        _raise_nofile()
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    pinned, pin_note = decide_pinning(args.no_pin)
    cells_per_round = len(SCENARIOS) * len(CONCURRENCIES) * 2
    est = args.rounds * cells_per_round * (args.duration + 0.3) + 3 * 2 * max(1.0, args.warmup) + 10
    print(f"bench: {args.rounds} round(s) x {cells_per_round} cells x {args.duration:g} s, about {est:.0f} s")
    print(f"bench: CPU pinning {pin_note}")
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"bench: WARNING: 1-min load average is {load1:.2f} before start; other work will add noise")
    if pinned:
        # The harness only sleeps and samples /proc, but keep even that off the gateway's core.
        os.sched_setaffinity(0, {STANDIN_CPU})
    procs: list[Proc] = []
    t_start, busy0, own0 = time.perf_counter(), machine_busy_s(), own_cpu_s()
    result: dict[str, Any] = {"args": vars(args), "pinning": pin_note, "environment": environment()}
    cells: list[loadgen.CellResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            _measure_all(args, Path(tmp), pinned, procs, result, cells)
    except KeyboardInterrupt:
        result["error"] = "interrupted"
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        result["error"] = str(exc)
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in reversed(procs):
            result.setdefault("exit_codes", {})[proc.name] = stop(proc)
            if proc.died_early:
                result.setdefault("died_early", []).append(proc.name)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    wall = time.perf_counter() - t_start
    # CPU that neither the harness nor its children used: other work on the box, i.e. noise.
    result["foreign_cpu_s"] = max(0.0, (machine_busy_s() - busy0) - (own_cpu_s() - own0))
    result["wall_s"] = wall
    summaries = report.summarise(cells)
    result["cells"] = [c.to_json() for c in cells]
    result["summary"] = [s.to_json() for s in summaries]
    result["added"] = report.added(summaries)
    (RESULTS / "latest.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if "error" in result:
        print(f"\nbench: FAILED: {result['error']}", file=sys.stderr)
        for proc in procs:
            early = " (it was already gone: crashed or killed by someone else)" if proc.died_early else ""
            print(f"--- {proc.name} exit code {proc.exit_code}{early}", file=sys.stderr)
            print(f"--- last lines of {proc.log_path}:\n{log_tail(proc)}", file=sys.stderr)
        print(f"bench: partial results in {RESULTS / 'latest.json'}", file=sys.stderr)
        return 130 if result["error"] == "interrupted" else 1
    report.print_report(result, summaries, RESULTS / "latest.json")
    return 1 if any(s.errors for s in summaries) or result["sanity"]["failed"] else 0


def _measure_all(
    args: argparse.Namespace,
    tmp: Path,
    pinned: bool,
    procs: list[Proc],
    result: dict[str, Any],
    cells: list[loadgen.CellResult],
) -> None:
    """Fills `result` and `cells` in place, so a failure half-way still leaves partial results."""
    lg_cpu = STANDIN_CPU if pinned else None
    logs = RESULTS / "logs"
    bodies = payloads.write_bodies(tmp)
    lua = loadgen.write_lua(tmp)
    result["bodies"] = {k: os.path.getsize(getattr(bodies, k)) for k in ("chat", "stream", "image")}
    result["bodies"]["image_png_bytes"] = bodies.image_png_bytes
    s_port, g_port = free_port(), free_port()
    start_standin(s_port, lg_cpu, logs, procs)
    gateway, result["startup"] = start_gateway(g_port, s_port, GATEWAY_CPU if pinned else None, logs, procs)
    urls = {t: f"http://{HOST}:{p}/v1/chat/completions" for t, p in (("direct", s_port), ("gateway", g_port))}
    result["sanity"] = sanity_check(urls, bodies)
    for line in result["sanity"]["messages"]:
        print(f"bench: {line}")
    for body in (bodies.chat, bodies.stream, bodies.image):
        for target in ("direct", "gateway"):
            loadgen.run_wrk(urls[target], lua, body, 4, args.warmup, lg_cpu)
    run_rounds(args, urls, procs, lua, bodies, lg_cpu, cells)
    time.sleep(1.0)
    result["after_load_rss_kb"] = rss_kb(process_tree(gateway.pid))


def environment() -> dict[str, Any]:
    rev, dirty = "unknown", None
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        rev = git.stdout.strip() if git.returncode == 0 else "none (no commit yet)"
        st = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = bool(st.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass  # provenance is nice to have; never fail a bench run over it
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "wrk": loadgen.wrk_version(),
        "git_rev": rev,
        "git_dirty": dirty,
        "loadavg_at_start": [round(x, 2) for x in load],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary_is": "median over rounds of each run's p50/p99/req/s",
    }


if __name__ == "__main__":
    raise SystemExit(main())
