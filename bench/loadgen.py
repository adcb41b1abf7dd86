"""Load generators: wrk (throughput, full-response latency) and the aiohttp SSE client (first byte).

Both are closed-loop (N connections, each sends its next request when the previous one is done)
and both print one machine-readable `BENCH_RESULT {json}` line that is parsed here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.processes import pin_prefix

MARK = "BENCH_RESULT "

# wrk runs init() before it formats the request, so the body can be read from a file here (a 1 MB
# body does not fit on a command line). response() is defined to count every non-2xx exactly: wrk's
# own `errors.status` only counts >= 400. setup()/done() is wrk's documented way to sum per-thread
# counters.
WRK_LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  non2xx = 0
  last_bad = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local non2xx_total, bad = 0, 0
  for _, t in ipairs(threads) do
    non2xx_total = non2xx_total + t:get("non2xx")
    local b = t:get("last_bad")
    if b ~= 0 then bad = b end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"non2xx":%d,"last_bad_status":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status_ge400":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    non2xx_total, bad, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class CellResult:
    """One measurement: a (scenario, concurrency, target) cell in one round."""

    scenario: str
    concurrency: int
    target: str
    round: int
    tool: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    error_detail: dict[str, Any] = field(default_factory=dict)
    settle_s: float = 0.0  # how long the servers needed to go idle before this cell
    # Gateway-only, filled by the orchestrator.
    gateway_cpu_us_per_req: float | None = None
    gateway_peak_rss_kb: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    # `wrk -v` prints its banner and exits 1; we only want the first line.
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "unknown"


def write_lua(folder: Path) -> Path:
    path = folder / "post.lua"
    path.write_text(WRK_LUA)
    return path


def _parse(stdout: str, what: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            parsed: dict[str, Any] = orjson.loads(line[len(MARK) :])
            return parsed
    raise RuntimeError(f"{what}: no {MARK.strip()} line in output:\n{stdout[-2000:]}")


def run_wrk(
    url: str,
    lua: Path,
    body: Path,
    concurrency: int,
    duration_s: float,
    cpu: int | None,
) -> dict[str, Any]:
    """One wrk run; returns the parsed BENCH_RESULT dict. One thread: it is pinned to one core anyway."""
    argv = [
        *pin_prefix(cpu),
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
        "--",
        str(body),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}\n{out.stdout[-2000:]}")
    return _parse(out.stdout, "wrk")


def wrk_cell(raw: dict[str, Any], scenario: str, concurrency: int, target: str, rnd: int) -> CellResult:
    socket_errors = sum(int(raw[k]) for k in ("connect", "read", "write", "timeout"))
    duration_s = max(int(raw["duration_us"]), 1) / 1e6
    return CellResult(
        scenario=scenario,
        concurrency=concurrency,
        target=target,
        round=rnd,
        tool="wrk",
        rps=int(raw["requests"]) / duration_s,
        p50_ms=int(raw["p50_us"]) / 1000,
        p99_ms=int(raw["p99_us"]) / 1000,
        requests=int(raw["requests"]),
        errors=int(raw["non2xx"]) + socket_errors,
        error_detail=raw,
    )


def run_sse_client(
    url: str,
    body: Path,
    concurrency: int,
    duration_s: float,
    cpu: int | None,
    cwd: Path,
) -> dict[str, Any]:
    """Run bench.sseclient in its own pinned process so it competes for CPU 0, not the gateway's core."""
    argv = [
        *pin_prefix(cpu),
        sys.executable,
        "-m",
        "bench.sseclient",
        "--url",
        url,
        "--body",
        str(body),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration_s),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False, cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(f"sseclient failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return _parse(out.stdout, "sseclient")


def sse_cell(raw: dict[str, Any], concurrency: int, target: str, rnd: int) -> CellResult:
    return CellResult(
        scenario="stream-ttfb",
        concurrency=concurrency,
        target=target,
        round=rnd,
        tool="aiohttp",
        rps=float(raw["rps"]),
        p50_ms=float(raw["ttfb_p50_us"]) / 1000,
        p99_ms=float(raw["ttfb_p99_us"]) / 1000,
        requests=int(raw["requests"]),
        errors=int(raw["errors"]),
        error_detail=raw,
    )
