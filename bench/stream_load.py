"""`python -m bench.stream_load`: 1,000 concurrent streaming chat completions held open, direct vs gateway.

Starts the vLLM stand-in (slots for every client, so nothing queues; a paced reply of N tokens, so each
stream stays open for `--hold-s` seconds with a steady trickle of events) and the real gateway in front of
it, as subprocesses. Then opens `--clients` streaming chat completions at once from this process (asyncio +
aiohttp, one connection per stream), first straight to the stand-in ("direct"), then through the gateway,
and checks every stream: first event, `data: [DONE]`, exactly N content tokens and the right text.

Printed as one table (direct | gateway) and written to bench/results/stream_load.json: streams opened,
held at once (counted by the client, by the stand-in's `vllm:num_requests_running` and by the gateway's
`gateway_requests_in_flight`), completed, errors by kind, time to first event, wall time, RSS (sampled every
100 ms, plus VmHWM) and CPU of the gateway and the stand-in. Exit code 0 only if every stream completed in
both columns; 1 on any error; 2 when the machine cannot run it (file descriptor limit, a bench running).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import orjson

from bench.processes import (
    HOST,
    Proc,
    cpu_seconds,
    free_port,
    log_tail,
    machine_cpu_s,
    own_cpu_s,
    pin_prefix,
    proc_status_kb,
    spawn,
    stop,
    wait_http_200,
)
from bench.servers import GATEWAY_CPU, ROOT, STANDIN_CPU, decide_pinning
from bench.sseclient import percentile
from gateway.settings import Settings

MODEL = "qwen3-vl-2b"
RESULTS = ROOT / "bench" / "results"
RESULT_FILE = "stream_load.json"
TARGETS = ("direct", "gateway")
# Error kinds, in the order the table prints them.
ERROR_KINDS = {
    "connect": "connect error",
    "no_response": "no response (closed before headers)",
    "http_status": "HTTP status not 200",
    "broken": "broken stream (reset, timeout mid-stream)",
    "error_event": "error event in the stream",
    "no_done": "missing data: [DONE]",
    "token_count": "token count or text wrong",
    "timeout": "not finished by the deadline",
}
# Descriptors one stream needs: the gateway holds two sockets per stream (client side and upstream side).
FDS_PER_STREAM = 2
FD_HEADROOM = 256


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.stream_load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=1000, help="concurrent streams (default 1000)")
    ap.add_argument("--hold-s", type=float, default=15.0, help="how long each stream lasts (default 15 s)")
    ap.add_argument("--tokens-per-s", type=float, default=4.0, help="events per second per stream (default 4)")
    ap.add_argument(
        "--ramp-s", type=float, default=0.0, help="spread the stream starts over this many seconds (default 0: at once)"
    )
    ap.add_argument(
        "--standin-backlog",
        type=int,
        default=2048,
        help="the stand-in's listen backlog (default 2048, as uvicorn under `vllm serve`)",
    )
    ap.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="GATEWAY_X=VALUE",
        help="a gateway setting for this run (repeatable); by default the gateway runs on its defaults",
    )
    ap.add_argument("--idle-s", type=float, default=2.0, help="wait after /ready before the idle RSS (default 2)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON, the logs and the lock go")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.hold_s <= 0 or args.tokens_per_s <= 0 or args.ramp_s < 0 or args.idle_s < 0:
        ap.error("--clients must be >= 1, --hold-s and --tokens-per-s > 0, --ramp-s and --idle-s >= 0")
    for setting in args.gateway_env:
        name, eq, _value = setting.partition("=")
        if not eq or not name.startswith("GATEWAY_"):
            ap.error(f"--gateway-env takes GATEWAY_NAME=VALUE, not {setting!r}")
    args.tokens = max(1, round(args.hold_s * args.tokens_per_s))
    return args


# -- the client ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the client saw over one column; updated by every stream on one event loop."""

    requested: int = 0
    first_event: int = 0
    completed: int = 0
    open_now: int = 0
    peak_open: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_error: dict[str, str] = field(default_factory=dict)
    ttft_s: list[float] = field(default_factory=list)
    # (when the stream started, s after the column's start; its time to first event, ms): shows whether slow
    # first events cluster at one moment (a stall somewhere) or spread over the run.
    first_events: list[tuple[float, float]] = field(default_factory=list)
    started_at: float = 0.0
    duration_s: list[float] = field(default_factory=list)

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.last_error[kind] = detail[:300]


@dataclass(frozen=True)
class Expected:
    """What every stream must carry: this many content tokens, joining to this text."""

    tokens: int
    text: str


def reply_text(tokens: int) -> str:
    """A reply the stand-in splits into exactly `tokens` tokens (words with their trailing space)."""
    return " ".join(f"w{i}" for i in range(tokens))


def request_body(tokens: int) -> bytes:
    return orjson.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hold this stream open"}],
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )


class _Stream:
    """Parser state of one SSE stream: events are `data: <json>` blocks separated by a blank line."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events = 0
        self.content: list[str] = []
        self.content_events = 0
        self.usage_tokens: int | None = None
        self.done = False
        self.error_event: str | None = None

    def feed(self, chunk: bytes) -> int:
        """Consume a chunk; returns how many complete events it finished."""
        self.buffer += chunk
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    self._data(line[6:])
        return len(blocks)

    def _data(self, payload: bytes) -> None:
        self.events += 1
        if payload == b"[DONE]":
            self.done = True
            return
        obj = orjson.loads(payload)
        if not isinstance(obj, dict):
            raise ValueError(f"an event that is not a JSON object: {payload[:100]!r}")
        if "error" in obj:
            self.error_event = payload.decode(errors="replace")
            return
        for choice in obj.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.content.append(text)
                self.content_events += 1
        usage = obj.get("usage")
        if usage:
            self.usage_tokens = usage.get("completion_tokens")


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, expected: Expected, tally: Tally, delay_s: float
) -> None:
    """One streaming request; every outcome lands in `tally` (this never raises, except on cancellation)."""
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    tally.requested += 1
    t0 = time.perf_counter()
    stream = _Stream()
    opened = False
    try:
        try:
            resp = await session.post(url, data=body, headers={"Content-Type": "application/json"})
        except aiohttp.ClientConnectorError as exc:
            tally.fail("connect", repr(exc))
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.fail("no_response", repr(exc))
            return
        async with resp:
            try:
                if resp.status != 200:
                    tally.fail("http_status", f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
                    return
                async for chunk in resp.content.iter_any():
                    if stream.feed(chunk) and not opened:
                        opened = True
                        ttft = time.perf_counter() - t0
                        tally.ttft_s.append(ttft)
                        tally.first_events.append((round(t0 - tally.started_at, 4), round(ttft * 1000, 2)))
                        tally.first_event += 1
                        tally.open_now += 1
                        tally.peak_open = max(tally.peak_open, tally.open_now)
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.fail("http_status" if resp.status != 200 else "broken", repr(exc))
                return
    except ValueError as exc:  # orjson.JSONDecodeError: an event that is not JSON
        tally.fail("broken", f"bad event: {exc!r}")
        return
    finally:
        if opened:
            tally.open_now -= 1
    tally.duration_s.append(time.perf_counter() - t0)
    text = "".join(stream.content)
    if stream.error_event is not None:
        tally.fail("error_event", stream.error_event)
    elif not stream.done:
        tally.fail("no_done", f"ended after {stream.events} events without [DONE]")
    elif stream.content_events != expected.tokens or text != expected.text or stream.usage_tokens != expected.tokens:
        tally.fail(
            "token_count",
            f"{stream.content_events} content events, usage {stream.usage_tokens}, "
            f"{len(text)} chars; expected {expected.tokens} tokens, {len(expected.text)} chars",
        )
    else:
        tally.completed += 1


async def run_streams(
    url: str, clients: int, expected: Expected, ramp_s: float, deadline_s: float, tally: Tally
) -> float:
    """Open `clients` streams (spread over `ramp_s`) and wait for all of them; returns the wall time."""
    body = request_body(expected.tokens)
    # One connection per stream: the connector must not cap below the client count.
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=0, force_close=True)
    # No total timeout (the deadline below bounds the column); a silent socket for 30 s is a broken stream.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = tally.started_at = time.perf_counter()
        tasks = [
            asyncio.ensure_future(one_stream(session, url, body, expected, tally, ramp_s * i / clients))
            for i in range(clients)
        ]
        try:
            _done, pending = await asyncio.wait(tasks, timeout=deadline_s)
        finally:
            # On the deadline, and on Ctrl-C (the runner cancels us): no stream may outlive the session.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            tally.errors["timeout"] += len(pending)
            tally.last_error["timeout"] = f"{len(pending)} streams still open after {deadline_s:.0f} s"
        return time.perf_counter() - t0


# -- observing the servers ----------------------------------------------------------------------------------


def metric_value(text: str, name: str) -> float | None:
    """The first sample of `name` (labels or not) in Prometheus text; None if absent."""
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            return float(line.rsplit(" ", 1)[1])
    return None


# Gateway counters whose change over a column is kept (by label set) in the results, to explain any error.
GATEWAY_COUNTERS = (
    "gateway_requests_total",
    "gateway_upstream_errors_total",
    "gateway_upstream_retries_total",
    "gateway_upstream_ejections_total",
)


def samples(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """`name{labels}` -> value for every sample of the given metric names in Prometheus text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(names):
            key, _, value = line.rpartition(" ")
            if key.split("{", 1)[0] in names:
                out[key] = float(value)
    return out


def counter_deltas(before: str, after: str, names: tuple[str, ...]) -> dict[str, float]:
    """The samples that changed between two scrapes, and by how much."""
    old, new = samples(before, names), samples(after, names)
    return {key: value - old.get(key, 0.0) for key, value in new.items() if value != old.get(key, 0.0)}


def delta_sum(deltas: dict[str, float], name: str) -> float:
    return sum(v for k, v in deltas.items() if k.split("{", 1)[0] == name)


class MetricsPoller:
    """Polls Prometheus gauges on the client's loop during a column and keeps their peaks."""

    def __init__(self, session: aiohttp.ClientSession, gauges: dict[str, tuple[str, str]], interval_s: float) -> None:
        self._session = session
        self._gauges = gauges  # key -> (url, metric name)
        self._interval = interval_s
        self.peaks: dict[str, float] = dict.fromkeys(gauges, 0.0)
        # The gateway counts the scrape itself as a request in flight: subtract it.
        self._self_count = {key: 1 for key, (_url, name) in gauges.items() if name == "gateway_requests_in_flight"}
        self.failures = 0

    async def run(self) -> None:
        while True:
            for key, (url, name) in self._gauges.items():
                try:
                    async with self._session.get(url) as resp:
                        value = metric_value(await resp.text(), name)
                except (aiohttp.ClientError, TimeoutError):
                    self.failures += 1
                    continue
                if value is not None:
                    self.peaks[key] = max(self.peaks[key], value - self._self_count.get(key, 0))
            await asyncio.sleep(self._interval)


class LoopLag:
    """How late the client's event loop wakes a 10 ms sleep: if it lags, the client (not a server) is the limit."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self._interval = interval_s
        self.max_ms = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self._interval)
            self.max_ms = max(self.max_ms, (loop.time() - before - self._interval) * 1000)


# Kernel TCP counters that explain slow connects: a full accept queue drops the SYN or the handshake's last ACK,
# and the client retries after 1 s. Box-wide, so other work on the machine can add to them.
TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPReqQFullDoCookies")


def tcp_counters() -> dict[str, int]:
    """TcpExt counters from /proc/net/netstat (empty if unreadable)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return {k: int(table[k]) for k in TCP_COUNTERS if k in table}
    return {}


def nofile_limit(pid: int) -> int | None:
    """The soft `Max open files` of a running process, from /proc/<pid>/limits."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class PeakSampler:
    """A thread sampling VmRSS and open descriptors of some pids every `interval_s`; keeps the peaks."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.1) -> None:
        self._pids = pids
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-sampler", daemon=True)
        self.peak_rss_kb: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_fds: dict[str, int] = dict.fromkeys(pids, 0)
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self._pids.items():
                self.peak_rss_kb[name] = max(self.peak_rss_kb[name], proc_status_kb(pid, "VmRSS"))
                self.peak_fds[name] = max(self.peak_fds[name], open_fds(pid))
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# -- one column ---------------------------------------------------------------------------------------------


@dataclass
class Column:
    target: str
    clients: int
    sent: int  # requests actually started (all of them unless the deadline hit during a ramp)
    first_event: int
    peak_open_client: int
    peak_running_standin: float
    peak_waiting_standin: float
    peak_in_flight_gateway: float | None
    completed: int
    errors: dict[str, int]
    last_error: dict[str, str]
    ttft_p50_ms: float
    ttft_p99_ms: float
    ttft_max_ms: float
    stream_p50_s: float
    stream_max_s: float
    wall_s: float
    standin_completed: int  # the stand-in's own records: responses it finished sending
    standin_aborted: int
    gateway_rss_before_kb: int
    gateway_peak_rss_kb: int
    gateway_peak_fds: int
    gateway_cpu_s: float
    gateway_counters: dict[str, float] | None  # changes of GATEWAY_COUNTERS over the column, by label set
    standin_rss_before_kb: int
    standin_peak_rss_kb: int
    standin_peak_fds: int
    standin_cpu_s: float
    client_cpu_s: float
    rss_samples: int
    tcp: dict[str, int]  # deltas of TCP_COUNTERS over the column (box-wide)
    client_loop_lag_max_ms: float
    metrics_poll_failures: int  # scrapes of /metrics that failed during the column (peaks may then be low)
    first_events: list[tuple[float, float]]  # (stream start s, time to first event ms), in arrival order

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


async def _get_json(session: aiohttp.ClientSession, url: str, method: str = "GET") -> Any:
    async with session.request(method, url) as resp:
        resp.raise_for_status()
        return orjson.loads(await resp.read())


async def _get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        resp.raise_for_status()
        return await resp.text()


async def _wait_standin_idle(session: aiohttp.ClientSession, standin_root: str, timeout_s: float) -> None:
    """Until the stand-in holds no request (the previous column's streams are all released)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        text = await _get_text(session, f"{standin_root}/metrics")
        if not metric_value(text, "vllm:num_requests_running") and not metric_value(text, "vllm:num_requests_waiting"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the stand-in still holds requests {timeout_s:.0f} s after the last column")


async def run_column(target: str, args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]) -> Column:
    standin_root, gateway_root = f"http://{HOST}:{ports['standin']}", f"http://{HOST}:{ports['gateway']}"
    url = f"{standin_root if target == 'direct' else gateway_root}/v1/chat/completions"
    expected = Expected(args.tokens, reply_text(args.tokens))
    # A separate session (own connections) for control and metrics, so it never competes with the streams' pool.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as control:
        await _wait_standin_idle(control, standin_root, timeout_s=30)
        await _get_json(control, f"{standin_root}/_standin/requests", method="DELETE")
        gw_metrics_before = await _get_text(control, f"{gateway_root}/metrics")
        # The stand-in's /metrics is a few lines of text: 4 Hz. The gateway's costs it ~2 ms of its core (py-spy),
        # so it is scraped once a second (Prometheus would scrape every 15 s).
        pollers = [
            MetricsPoller(
                control,
                {
                    "running": (f"{standin_root}/metrics", "vllm:num_requests_running"),
                    "waiting": (f"{standin_root}/metrics", "vllm:num_requests_waiting"),
                },
                interval_s=0.25,
            )
        ]
        if target == "gateway":
            pollers.append(
                MetricsPoller(control, {"in_flight": (f"{gateway_root}/metrics", "gateway_requests_in_flight")}, 1.0)
            )
        tally = Tally()
        rss_before = {name: proc_status_kb(pid, "VmRSS") for name, pid in pids.items()}
        cpu_before = {name: cpu_seconds([pid]) for name, pid in pids.items()}
        client_cpu0 = time.process_time()
        tcp_before = tcp_counters()
        deadline = args.ramp_s + args.hold_s * 2 + 60
        lag = LoopLag()
        with PeakSampler(pids, interval_s=0.1) as sampler:
            watchers = [asyncio.ensure_future(p.run()) for p in pollers] + [asyncio.ensure_future(lag.run())]
            try:
                wall = await run_streams(url, args.clients, expected, args.ramp_s, deadline, tally)
            finally:
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
        client_cpu = time.process_time() - client_cpu0
        tcp_after = tcp_counters()
        cpu_used = {name: cpu_seconds([pid]) - cpu_before[name] for name, pid in pids.items()}
        await _wait_standin_idle(control, standin_root, timeout_s=30)
        records = await _get_json(control, f"{standin_root}/_standin/requests")
        gw_metrics_after = await _get_text(control, f"{gateway_root}/metrics")

    ttft_ms = [t * 1000 for t in tally.ttft_s]
    return Column(
        target=target,
        clients=args.clients,
        sent=tally.requested,
        first_event=tally.first_event,
        peak_open_client=tally.peak_open,
        peak_running_standin=pollers[0].peaks["running"],
        peak_waiting_standin=pollers[0].peaks["waiting"],
        peak_in_flight_gateway=pollers[1].peaks["in_flight"] if len(pollers) > 1 else None,
        completed=tally.completed,
        errors={kind: tally.errors.get(kind, 0) for kind in ERROR_KINDS},
        last_error=tally.last_error,
        ttft_p50_ms=percentile(ttft_ms, 50),
        ttft_p99_ms=percentile(ttft_ms, 99),
        ttft_max_ms=max(ttft_ms, default=0.0),
        stream_p50_s=percentile(tally.duration_s, 50),
        stream_max_s=max(tally.duration_s, default=0.0),
        wall_s=wall,
        standin_completed=int(records["completed_count"]),
        standin_aborted=int(records["aborted_count"]),
        gateway_rss_before_kb=rss_before["gateway"],
        gateway_peak_rss_kb=sampler.peak_rss_kb["gateway"],
        gateway_peak_fds=sampler.peak_fds["gateway"],
        gateway_cpu_s=cpu_used["gateway"],
        gateway_counters=counter_deltas(gw_metrics_before, gw_metrics_after, GATEWAY_COUNTERS)
        if target == "gateway"
        else None,
        standin_rss_before_kb=rss_before["standin"],
        standin_peak_rss_kb=sampler.peak_rss_kb["standin"],
        standin_peak_fds=sampler.peak_fds["standin"],
        standin_cpu_s=cpu_used["standin"],
        client_cpu_s=client_cpu,
        rss_samples=sampler.samples,
        tcp={k: tcp_after[k] - tcp_before[k] for k in tcp_after if k in tcp_before},
        client_loop_lag_max_ms=lag.max_ms,
        metrics_poll_failures=sum(p.failures for p in pollers),
        first_events=tally.first_events,
    )


# -- processes ----------------------------------------------------------------------------------------------


def start_standin(args: argparse.Namespace, port: int, cpu: int | None, logs: Path, procs: list[Proc]) -> Proc:
    argv = [
        *pin_prefix(cpu),
        sys.executable,
        "-m",
        "launchers.vllm_standin",
        "--backlog",
        str(args.standin_backlog),
        "--host",
        HOST,
        "--port",
        str(port),
        "--model",
        MODEL,
        "--latency-ms",
        "0",
        "--tokens-per-s",
        f"{args.tokens_per_s:g}",
        # Slots for every stream and then some: a stream must never wait in the stand-in's queue.
        "--max-num-seqs",
        str(args.clients + 64),
        "--reply",
        reply_text(args.tokens),
    ]
    proc = spawn("stand-in", argv, _env_without_gateway_settings(), ROOT, logs / "stream_load-standin.log")
    procs.append(proc)  # registered before waiting, so a failed start is still stopped
    wait_http_200(proc, port, "/health", timeout_s=30)
    return proc


def start_gateway(
    port: int, upstream_port: int, cpu: int | None, logs: Path, store: Path, procs: list[Proc], settings: list[str]
) -> Proc:
    env = _env_without_gateway_settings()
    for setting in settings:  # --gateway-env, checked by parse_args
        name, _, value = setting.partition("=")
        env[name] = value
    env.update(
        GATEWAY_HOST=HOST,
        GATEWAY_PORT=str(port),
        GATEWAY_MODELS=MODEL,
        GATEWAY_UPSTREAMS=orjson.dumps({MODEL: f"http://{HOST}:{upstream_port}/v1"}).decode(),
        GATEWAY_STORE_PATH=str(store),
    )
    proc = spawn(
        "gateway", [*pin_prefix(cpu), sys.executable, "-m", "gateway"], env, ROOT, logs / "stream_load-gateway.log"
    )
    procs.append(proc)
    wait_http_200(proc, port, "/ready", timeout_s=30)
    return proc


def _env_without_gateway_settings() -> dict[str, str]:
    # The gateway's defaults are what is measured: no API keys, limits or upstreams from the caller's shell.
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


# -- the report ---------------------------------------------------------------------------------------------


def _mb(kb: int | float) -> str:
    return f"{kb / 1024:.1f}"


def _error_count(kind: str) -> Callable[[dict[str, Any]], str]:
    return lambda column: str(column["errors"][kind])


def _upstream_trouble(column: dict[str, Any]) -> str:
    counters = column["gateway_counters"]
    if counters is None:
        return "-"
    names = ("errors", "retries", "ejections")
    return " / ".join(f"{delta_sum(counters, f'gateway_upstream_{n}_total'):.0f}" for n in names)


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, direct, gateway) rows of the printed table; the test reads the counts from these too."""
    cols = {c["target"]: c for c in result["columns"]}

    def row(label: str, fmt: Callable[[dict[str, Any]], str]) -> tuple[str, str, str]:
        direct, gateway = (fmt(cols[t]) if t in cols else "-" for t in TARGETS)
        return label, direct, gateway

    tokens = result["args"]["tokens"]
    rows = [
        row("clients requested", lambda c: str(c["clients"])),
        row("streams that got their first event", lambda c: str(c["first_event"])),
        row("peak open streams (client count)", lambda c: str(c["peak_open_client"])),
        row("peak running (stand-in /metrics)", lambda c: f"{c['peak_running_standin']:.0f}"),
        row("peak waiting (stand-in /metrics)", lambda c: f"{c['peak_waiting_standin']:.0f}"),
        row(
            "peak in flight (gateway /metrics, minus the scrape)",
            lambda c: "-" if c["peak_in_flight_gateway"] is None else f"{c['peak_in_flight_gateway']:.0f}",
        ),
        row(f"completed ([DONE], {tokens} tokens, text ok)", lambda c: str(c["completed"])),
        row("stand-in: finished sending / aborted", lambda c: f"{c['standin_completed']} / {c['standin_aborted']}"),
        row("errors, total", lambda c: str(sum(c["errors"].values()))),
    ]
    rows += [row(f"  {label}", _error_count(kind)) for kind, label in ERROR_KINDS.items()]
    rows += [
        row("gateway upstream errors / retries / ejections", _upstream_trouble),
        row("time to first event p50 ms", lambda c: f"{c['ttft_p50_ms']:.1f}"),
        row("time to first event p99 ms", lambda c: f"{c['ttft_p99_ms']:.1f}"),
        row("time to first event max ms", lambda c: f"{c['ttft_max_ms']:.1f}"),
        row("stream duration p50 / max s", lambda c: f"{c['stream_p50_s']:.2f} / {c['stream_max_s']:.2f}"),
        row("wall time s", lambda c: f"{c['wall_s']:.1f}"),
        row(
            "gateway RSS before -> peak MB",
            lambda c: f"{_mb(c['gateway_rss_before_kb'])} -> {_mb(c['gateway_peak_rss_kb'])}",
        ),
        row("gateway peak open fds", lambda c: str(c["gateway_peak_fds"])),
        row("gateway CPU s", lambda c: f"{c['gateway_cpu_s']:.2f}"),
        row(
            "stand-in RSS before -> peak MB",
            lambda c: f"{_mb(c['standin_rss_before_kb'])} -> {_mb(c['standin_peak_rss_kb'])}",
        ),
        row("stand-in peak open fds", lambda c: str(c["standin_peak_fds"])),
        row("stand-in CPU s", lambda c: f"{c['standin_cpu_s']:.2f}"),
        row("client CPU s (this process)", lambda c: f"{c['client_cpu_s']:.2f}"),
        row("client event-loop lag max ms", lambda c: f"{c['client_loop_lag_max_ms']:.0f}"),
        row(
            "kernel: listen overflows / SYN retransmits",
            lambda c: f"{c['tcp'].get('ListenOverflows', 0)} / {c['tcp'].get('TCPSynRetrans', 0)}",
        ),
    ]
    return rows


def render_table(result: dict[str, Any]) -> str:
    rows = table_rows(result)
    header = ("", *TARGETS)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report(result: dict[str, Any], json_path: Path) -> None:
    a = result["args"]
    print()
    print(
        f"== {a['clients']} concurrent streaming chat completions, each {a['tokens']} tokens at"
        f" {a['tokens_per_s']:g} tokens/s (~{a['tokens'] / a['tokens_per_s']:.0f} s), started"
        + (f" over {a['ramp_s']:g} s" if a["ramp_s"] else " at once")
        + "; one aiohttp client process, one connection per stream"
    )
    print(render_table(result))
    gw = result["gateway"]
    print()
    print(
        f"gateway RSS: idle {_mb(gw['idle_rss_kb'])} MB ({a['idle_s']:g} s after /ready), peak sampled every"
        f" 100 ms {_mb(gw['peak_rss_kb'])} MB, VmHWM at the end {_mb(gw['hwm_kb'])} MB;"
        f" stand-in VmHWM {_mb(result['standin']['hwm_kb'])} MB"
    )
    print(
        f"open-file limit: soft {result['nofile']['soft']} (hard {result['nofile']['hard']}) here; gateway"
        f" {result['nofile']['gateway']}, stand-in {result['nofile']['standin']}"
    )
    print(f"pinning: {result['pinning']}")
    cpus = os.cpu_count() or 1
    share = 100 * result["foreign_cpu_s"] / (cpus * result["wall_s"]) if result["wall_s"] else 0.0
    print(
        f"whole run {result['wall_s']:.0f} s; other processes on this box used {result['foreign_cpu_s']:.1f} CPU-s"
        f" meanwhile ({share:.0f}% of {cpus} CPUs), the hypervisor stole {result['steal_cpu_s']:.1f} CPU-s,"
        f" interrupts took {result['irq_cpu_s']:.1f}" + ("  WARNING: not quiet, expect noisy TTFT" if share > 5 else "")
    )
    print(f"exit codes after our SIGTERM: {result.get('exit_codes')} (-15 = ended by that SIGTERM)")
    print(f"raw results: {json_path}")
    bad = [c for c in result["columns"] if c["completed"] != c["clients"] or sum(c["errors"].values())]
    if bad:
        print("\n" + "!" * 72)
        for c in bad:
            print(f"!!! {c['target']}: {c['completed']} of {c['clients']} streams completed; errors {c['errors']}")
            for kind, detail in c["last_error"].items():
                print(f"!!!   last {kind}: {detail}")
        print("!" * 72)


# -- main ---------------------------------------------------------------------------------------------------


def _raise_nofile(needed: int) -> tuple[int, int, str | None]:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); a message if even that is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft, hard, None
    return (
        soft,
        hard,
        f"the open-file limit is {soft} (hard limit {hard}) but {needed} descriptors are needed"
        f" ({FDS_PER_STREAM} per stream in the gateway plus {FD_HEADROOM}). Raise the hard limit"
        " (e.g. `ulimit -Hn 65536` as root, or `nofile` in /etc/security/limits.conf, or LimitNOFILE= for a"
        " systemd unit) or run with fewer --clients.",
    )


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the `finally` that stops our children runs


@contextlib.contextmanager
def _process_settings(pin_cpu: int | None) -> Iterator[None]:
    """SIGTERM as an exception and (optionally) this process on one CPU, both undone afterwards."""
    old_term = signal.signal(signal.SIGTERM, _sigterm)
    old_affinity = os.sched_getaffinity(0)
    try:
        if pin_cpu is not None:
            os.sched_setaffinity(0, {pin_cpu})
        yield
    finally:
        os.sched_setaffinity(0, old_affinity)
        signal.signal(signal.SIGTERM, old_term)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for module in ("gateway", "launchers/vllm_standin"):
        if not (ROOT / module / "__main__.py").exists():
            print(f"stream_load: {module}/__main__.py not found; nothing to benchmark.", file=sys.stderr)
            return 2
    soft, hard, problem = _raise_nofile(args.clients * FDS_PER_STREAM + FD_HEADROOM)
    if problem:
        print(f"stream_load: {problem}", file=sys.stderr)
        return 2
    results: Path = args.results_dir
    results.mkdir(parents=True, exist_ok=True)
    with (results / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # two benches would share 2 cores: refuse
        except BlockingIOError:
            print(f"stream_load: another bench run holds {results / '.lock'}; wait for it.", file=sys.stderr)
            return 2
        pinned, pin_note = decide_pinning(args.no_pin)
        result: dict[str, Any] = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "pinning": pin_note,
            "nofile": {"soft": soft, "hard": hard},
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "git": _git_state(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "columns": [],
        }
        procs: list[Proc] = []
        t_start, machine0, own0 = time.perf_counter(), machine_cpu_s(), own_cpu_s()
        # The gateway's SQLite store (unused by chat) lives and dies with the run.
        with (
            _process_settings(STANDIN_CPU if pinned else None),
            tempfile.TemporaryDirectory(prefix="stream-load-") as tmp,
        ):
            try:
                _measure(args, results, Path(tmp), pinned, procs, result)
            except KeyboardInterrupt:
                result["error"] = "interrupted"
            except SystemExit:  # our SIGTERM handler
                result["error"] = "terminated"
            except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                result["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                # A second Ctrl-C or SIGTERM must not cut the clean-up short and leave servers behind.
                old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
                old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
                try:
                    for proc in reversed(procs):
                        result.setdefault("exit_codes", {})[proc.name] = stop(proc)
                finally:
                    signal.signal(signal.SIGINT, old_int)
                    signal.signal(signal.SIGTERM, old_term)
        result["wall_s"] = time.perf_counter() - t_start
        machine = {k: v - machine0[k] for k, v in machine_cpu_s().items()}
        # CPU that neither this process nor its (now reaped) servers used: other work on the box, i.e. noise.
        result["foreign_cpu_s"] = max(0.0, machine["processes"] - (own_cpu_s() - own0))
        result["irq_cpu_s"], result["steal_cpu_s"] = machine["irq"], machine["steal"]
    json_path = results / RESULT_FILE
    json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if "error" in result:
        print(f"\nstream_load: FAILED: {result['error']}", file=sys.stderr)
        for proc in procs:
            print(f"--- {proc.name} exit code {proc.exit_code}; last lines of {proc.log_path}:", file=sys.stderr)
            print(log_tail(proc), file=sys.stderr)
        return {"interrupted": 130, "terminated": 143}.get(result["error"], 1)
    print_report(result, json_path)
    ok = all(c["completed"] == c["clients"] and not sum(c["errors"].values()) for c in result["columns"])
    return 0 if ok else 1


def _measure(
    args: argparse.Namespace, results: Path, tmp: Path, pinned: bool, procs: list[Proc], result: dict[str, Any]
) -> None:
    """Fills `result` in place, so a failure half-way still leaves what was measured."""
    logs = results / "logs"
    ports = {"standin": free_port(), "gateway": free_port()}
    print(
        f"stream_load: {args.clients} streams x ~{args.tokens / args.tokens_per_s:.0f} s, direct then gateway;"
        f" pinning {result['pinning']}",
        flush=True,
    )
    pool_cap = _pool_cap(args.gateway_env)
    if args.clients > pool_cap:
        print(
            f"stream_load: WARNING: {args.clients} clients > the gateway's {pool_cap} connections per upstream"
            " (GATEWAY_MAX_CONNECTIONS_PER_UPSTREAM): the rest wait in its pool (up to GATEWAY_POOL_TIMEOUT_S,"
            " then a retry)",
            flush=True,
        )
    standin = start_standin(args, ports["standin"], STANDIN_CPU if pinned else None, logs, procs)
    gw_cpu = GATEWAY_CPU if pinned else None
    store = tmp / "gateway-store.sqlite3"
    gateway = start_gateway(ports["gateway"], ports["standin"], gw_cpu, logs, store, procs, args.gateway_env)
    time.sleep(args.idle_s)  # "idle" = this long after /ready, before any traffic
    pids = {"gateway": gateway.pid, "standin": standin.pid}
    result["gateway"] = {"idle_rss_kb": proc_status_kb(gateway.pid, "VmRSS")}
    result["standin"] = {"idle_rss_kb": proc_status_kb(standin.pid, "VmRSS")}
    result["nofile"].update(gateway=nofile_limit(gateway.pid), standin=nofile_limit(standin.pid))
    for target in TARGETS:
        column = _run_loop(run_column(target, args, ports, pids))
        result["columns"].append(asdict(column))
        print(
            f"   {target:<8} {column.completed}/{column.clients} completed, {column.error_total} errors,"
            f" peak open {column.peak_open_client}, TTFT p50 {column.ttft_p50_ms:.1f} ms"
            f" p99 {column.ttft_p99_ms:.1f} ms, wall {column.wall_s:.1f} s",
            flush=True,
        )
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} during the {target} column")
    result["gateway"].update(
        peak_rss_kb=max(c["gateway_peak_rss_kb"] for c in result["columns"]),
        hwm_kb=proc_status_kb(gateway.pid, "VmHWM"),
    )
    result["standin"].update(
        peak_rss_kb=max(c["standin_peak_rss_kb"] for c in result["columns"]),
        hwm_kb=proc_status_kb(standin.pid, "VmHWM"),
    )


def _git_state() -> dict[str, Any]:
    """Which code was measured: the commit and whether the tree had changes (never fails the run)."""
    state: dict[str, Any] = {"rev": "unknown", "dirty": None}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        state["rev"] = git.stdout.strip() or "unknown"
        st = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        state["dirty"] = bool(st.stdout.strip())
    return state


def _pool_cap(settings: list[str]) -> int:
    """The gateway's connection cap per upstream in this run: its default unless --gateway-env sets it."""
    for setting in settings:
        name, _, value = setting.partition("=")
        if name == "GATEWAY_MAX_CONNECTIONS_PER_UPSTREAM" and value.isdigit():
            return int(value)
    default: int = Settings.model_fields["max_connections_per_upstream"].default
    return default


def _run_loop(coro: Any) -> Column:
    """Run on uvloop when present (the servers use it too), so the client's own cost stays low."""
    try:
        import uvloop
    except ImportError:
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        column: Column = runner.run(coro)
        return column


if __name__ == "__main__":
    raise SystemExit(main())
