"""Aggregate rounds (median of round medians) and render plain-text tables."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import CellResult

TITLES = {
    "chat": "non-stream chat, ~100 B body | wrk, closed loop | latency = request -> full response",
    "stream": "streaming chat (SSE) | wrk, closed loop | latency = request -> end of stream",
    "stream-ttfb": "streaming chat (SSE) | aiohttp client, closed loop | latency = first body byte",
    "image-1mb": "chat with ~1 MB base64 PNG in image_url | wrk, closed loop | latency = full response",
}


@dataclass
class Summary:
    scenario: str
    concurrency: int
    target: str
    tool: str
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    p50_spread_ms: float  # max - min of the round p50s: a rough noise floor for "added"
    requests: int
    errors: int
    cpu_us_per_req: float | None
    peak_rss_kb: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarise(cells: list[CellResult]) -> list[Summary]:
    """One Summary per (scenario, concurrency, target), in first-seen order."""
    groups: dict[tuple[str, int, str], list[CellResult]] = {}
    for c in cells:
        groups.setdefault((c.scenario, c.concurrency, c.target), []).append(c)
    out = []
    for (scenario, conc, target), group in groups.items():
        cpus = [c.gateway_cpu_us_per_req for c in group if c.gateway_cpu_us_per_req is not None]
        rss = [c.gateway_peak_rss_kb for c in group if c.gateway_peak_rss_kb is not None]
        p50s = [c.p50_ms for c in group]
        out.append(
            Summary(
                scenario=scenario,
                concurrency=conc,
                target=target,
                tool=group[0].tool,
                rounds=len(group),
                rps=statistics.median(c.rps for c in group),
                p50_ms=statistics.median(p50s),
                p99_ms=statistics.median(c.p99_ms for c in group),
                p50_spread_ms=max(p50s) - min(p50s),
                requests=sum(c.requests for c in group),
                errors=sum(c.errors for c in group),
                cpu_us_per_req=statistics.median(cpus) if cpus else None,
                peak_rss_kb=max(rss) if rss else None,
            )
        )
    return out


def _row(cols: list[str], widths: list[int]) -> str:
    # First column left-aligned (a name), the rest right-aligned (numbers).
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True)))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    return "\n".join(lines)


def scenario_tables(summaries: list[Summary]) -> str:
    blocks = []
    for scenario, title in TITLES.items():
        rows = [
            [
                s.scenario,
                str(s.concurrency),
                s.target,
                f"{s.rps:,.0f}",
                f"{s.p50_ms:.3f}",
                f"{s.p99_ms:.3f}",
                f"{s.errors}" + ("  <-- ERRORS" if s.errors else ""),
            ]
            for s in summaries
            if s.scenario == scenario
        ]
        if rows:
            header = ["scenario", "concurrency", "target", "req/s", "p50 ms", "p99 ms", "errors"]
            blocks.append(f"== {title}\n" + _table(header, rows))
    return "\n\n".join(blocks)


def added(summaries: list[Summary]) -> list[dict[str, Any]]:
    """Gateway minus direct for every (scenario, concurrency) that has both."""
    by_key = {(s.scenario, s.concurrency, s.target): s for s in summaries}
    out = []
    for s in summaries:
        if s.target != "gateway" or (s.scenario, s.concurrency, "direct") not in by_key:
            continue
        d = by_key[(s.scenario, s.concurrency, "direct")]
        add_p50 = s.p50_ms - d.p50_ms
        out.append(
            {
                "scenario": s.scenario,
                "concurrency": s.concurrency,
                "added_p50_ms": add_p50,
                "added_p99_ms": s.p99_ms - d.p99_ms,
                "rps_pct_of_direct": 100 * s.rps / d.rps if d.rps else 0.0,
                # Within the round-to-round wobble of either side: do not read the sign.
                "within_noise": abs(add_p50) <= max(d.p50_spread_ms, s.p50_spread_ms),
                "gateway_cpu_us_per_req": s.cpu_us_per_req,
                "gateway_peak_rss_mb": s.peak_rss_kb / 1024 if s.peak_rss_kb else None,
            }
        )
    return out


def added_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "scenario",
        "concurrency",
        "+p50 ms",
        "+p99 ms",
        "gw rps/direct",
        "gw CPU us/req",
        "gw peak RSS MB",
    ]
    body = []
    for r in rows:
        cpu = r["gateway_cpu_us_per_req"]
        rss = r["gateway_peak_rss_mb"]
        body.append(
            [
                r["scenario"],
                str(r["concurrency"]),
                f"{r['added_p50_ms']:+.3f}" + (" ~" if r["within_noise"] else ""),
                f"{r['added_p99_ms']:+.3f}",
                f"{r['rps_pct_of_direct']:.1f}%",
                "-" if cpu is None else f"{cpu:,.0f}",
                "-" if rss is None else f"{rss:.1f}",
            ]
        )
    note = (
        "(~ = |added p50| within the round-to-round spread of p50: below what this rig resolves.\n"
        " gw CPU us/req = gateway process-tree utime+stime / requests, 10 ms tick resolution.)"
    )
    return "== added by the gateway (gateway - direct, median of round medians)\n" + _table(header, body) + "\n" + note


def _bottleneck_warnings(summaries: list[Summary]) -> list[str]:
    """Direct c=32 must be far above gateway c=32, else we measured the stand-in or wrk, not the gateway."""
    by_key = {(s.scenario, s.concurrency, s.target): s for s in summaries}
    out = []
    for (scenario, conc, target), d in by_key.items():
        gw = by_key.get((scenario, conc, "gateway"))
        if target == "direct" and conc == 32 and gw and gw.rps > 0 and d.rps < 1.5 * gw.rps:
            out.append(
                f"WARNING: {scenario} c=32: direct {d.rps:,.0f} req/s is not far above gateway"
                f" {gw.rps:,.0f} req/s; the stand-in or the load generator (sharing CPU 0) may be the limit."
            )
    return out


def print_report(result: dict[str, Any], summaries: list[Summary], json_path: Path) -> None:
    st, b, a = result["startup"], result["bodies"], result["args"]
    peak32 = [s.peak_rss_kb for s in summaries if s.target == "gateway" and s.concurrency == 32 and s.peak_rss_kb]
    print()
    print(scenario_tables(summaries))
    print()
    print(added_table(result["added"]))
    print()
    print(f"gateway start-up: spawn -> /health 200 {st['health_200_s']:.3f} s, -> /ready 200 {st['ready_200_s']:.3f} s")
    rss = f"gateway RSS: idle (2 s after ready) {st['idle_rss_kb'] / 1024:.1f} MB"
    rss += f" over {st['processes']} process(es)"
    if peak32:
        rss += f", peak under c=32 {max(peak32) / 1024:.1f} MB"
    print(rss + f", 1 s after load {result['after_load_rss_kb'] / 1024:.1f} MB")
    print(
        f"bodies: chat {b['chat']} B, stream {b['stream']} B,"
        f" image {b['image'] / 1e6:.2f} MB (PNG {b['image_png_bytes'] / 1e6:.2f} MB before base64)"
    )
    print(f"pinning: {result['pinning']}")
    print(f"rounds: {a['rounds']} x {a['duration']:g} s per cell; wall time {result['wall_s']:.0f} s")
    # uvicorn re-raises the SIGTERM it caught after its clean shutdown, hence -15 rather than 0.
    print(f"exit codes after our SIGTERM: {result.get('exit_codes')} (-15 = ended by that SIGTERM)")
    foreign, wall, cpus = result["foreign_cpu_s"], result["wall_s"], result["environment"]["cpus"] or 1
    share = 100 * foreign / (cpus * wall) if wall else 0.0
    print(f"other processes on this box used {foreign:.1f} CPU-s during the run ({share:.0f}% of {cpus} CPUs)")
    if share > 5:
        print("WARNING: the machine was not quiet; expect noisy tails. Re-run when it is idle.")
    print(f"raw results: {json_path}")
    for line in _bottleneck_warnings(summaries):
        print(line)
    bad = [s for s in summaries if s.errors]
    if bad or result["sanity"]["failed"]:
        print("\n" + "!" * 72)
        for s in bad:
            print(f"!!! ERRORS: {s.scenario} c={s.concurrency} {s.target}: {s.errors} of {s.requests} requests")
        for line in result["sanity"]["failed"]:
            print(f"!!! SANITY: {line}")
        print("!!! the numbers above include failed requests; do not trust them")
        print("!" * 72)
