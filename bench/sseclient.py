"""Closed-loop streaming client measuring time to first body byte (wrk cannot see it).

`python -m bench.sseclient --url URL --body FILE --concurrency N --duration S` prints one
`BENCH_RESULT {json}` line: requests, errors, rps, and µs percentiles of TTFB and full stream.
TTFB = request sent -> first non-empty chunk of the response *body* (the first SSE event), not
just the headers, because a gateway could flush headers early and still buffer tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson


@dataclass
class Tally:
    ttfb_us: list[float] = field(default_factory=list)
    total_us: list[float] = field(default_factory=list)
    requests: int = 0
    non2xx: int = 0
    exceptions: int = 0
    no_done: int = 0  # 2xx streams that ended without the `data: [DONE]` terminator
    last_error: str = ""


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for an empty list (the error count tells that story)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, tally: Tally) -> None:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            first = b""
            while not first:
                first = await resp.content.readany()
                if not first:  # EOF before any body byte
                    break
            t_first = time.perf_counter()
            tail = first[-64:]
            async for chunk in resp.content.iter_any():
                tail = (tail + chunk)[-64:]
            t_end = time.perf_counter()
            tally.requests += 1
            if not 200 <= resp.status <= 299:
                tally.non2xx += 1
                tally.last_error = f"HTTP {resp.status}"
                return
            if b"[DONE]" not in tail:
                tally.no_done += 1
                tally.last_error = "stream ended without [DONE]"
            tally.ttfb_us.append((t_first - t0) * 1e6)
            tally.total_us.append((t_end - t0) * 1e6)
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.requests += 1
        tally.exceptions += 1
        tally.last_error = repr(exc)[:200]


async def _worker(session: aiohttp.ClientSession, url: str, body: bytes, stop_at: float, tally: Tally) -> None:
    while time.perf_counter() < stop_at:
        await _one(session, url, body, tally)


async def run(url: str, body: bytes, concurrency: int, duration_s: float) -> dict[str, object]:
    timeout = aiohttp.ClientTimeout(total=10)
    # limit=concurrency: one keep-alive connection per worker, like wrk's -c.
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    tally = Tally()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        stop_at = t0 + duration_s
        await asyncio.gather(*(_worker(session, url, body, stop_at, tally) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {
        "requests": tally.requests,
        "errors": tally.non2xx + tally.exceptions + tally.no_done,
        "non2xx": tally.non2xx,
        "exceptions": tally.exceptions,
        "no_done": tally.no_done,
        "last_error": tally.last_error,
        "duration_s": elapsed,
        "rps": tally.requests / elapsed if elapsed > 0 else 0.0,
        "ttfb_p50_us": percentile(tally.ttfb_us, 50),
        "ttfb_p99_us": percentile(tally.ttfb_us, 99),
        "total_p50_us": percentile(tally.total_us, 50),
        "total_p99_us": percentile(tally.total_us, 99),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="file holding the JSON request body")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        ap.error("loopback only: --url must start with http://127.0.0.1:")
    with open(args.body, "rb") as f:
        body = f.read()
    coro = run(args.url, body, args.concurrency, args.duration)
    # uvloop, when present, so the client's own overhead is as low as the servers' (both use it).
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    sys.stdout.write("BENCH_RESULT " + orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
