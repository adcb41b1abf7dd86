"""`python -m bench.document_throughput`: a 100-page PDF through the gateway against a batching stand-in.

The stand-in answers each page after a fixed service time S and runs at most C requests at once (as a vLLM
batch would); the gateway keeps C pages in flight (GATEWAY_PAGE_CONCURRENCY = C). The ideal wall time is
pages / C x S; the target is at most 1.15 x that. Also printed: the gateway's CPU per page (the gateway
process and its render workers: PDF rendering at 200 dpi, resize, PNG, parse), from /proc.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from PIL import Image, ImageDraw

from bench.processes import HOST, Proc, cpu_seconds, free_port, process_tree, spawn, stop, wait_http_200

ROOT = Path(__file__).resolve().parent.parent
MODEL = "dots-ocr"


def scanned_pdf(pages: int) -> bytes:
    """A PDF of `pages` A4 pages, each an image of text lines (like a scan), made with Pillow."""
    images = []
    for number in range(pages):
        page = Image.new("L", (827, 1169), 255)  # A4 at 100 dpi
        draw = ImageDraw.Draw(page)
        for line in range(40):
            draw.text((60, 60 + line * 26), f"page {number + 1} line {line + 1}: the quick brown fox " * 2, fill=0)
        images.append(page)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=100)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--service-ms", type=float, default=500.0, help="stand-in time per page")
    parser.add_argument("--concurrency", type=int, default=8, help="stand-in max_num_seqs = gateway page slots")
    args = parser.parse_args(argv)
    pdf = scanned_pdf(args.pages)
    standin_port, gateway_port = free_port(), free_port()
    procs: list[Proc] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-doc-"))
    try:
        standin = spawn(
            "stand-in",
            [
                sys.executable,
                "-m",
                "launchers.vllm_standin",
                "--host",
                HOST,
                "--port",
                str(standin_port),
                "--model",
                MODEL,
                "--max-model-len",
                "32768",
                "--latency-ms",
                str(args.service_ms),
                "--max-num-seqs",
                str(args.concurrency),
                "--reply",
                "Simulated page text.",
            ],
            {},
            ROOT,
            logs / "standin.log",
        )
        procs.append(standin)
        wait_http_200(standin, standin_port, "/health", timeout_s=30)
        env = {
            "GATEWAY_HOST": HOST,
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_MODELS": MODEL,
            "GATEWAY_UPSTREAMS": orjson.dumps({MODEL: f"http://{HOST}:{standin_port}/v1"}).decode(),
            "GATEWAY_PAGE_CONCURRENCY": str(args.concurrency),
            "GATEWAY_MAX_PAGES_PER_REQUEST": str(args.pages),
            "GATEWAY_STORE_PATH": str(logs / "store.sqlite3"),
        }
        gateway = spawn("gateway", [sys.executable, "-m", "gateway"], env, ROOT, logs / "gateway.log")
        procs.append(gateway)
        wait_http_200(gateway, gateway_port, "/ready", timeout_s=30)
        files = {"file": ("scan.pdf", pdf, "application/pdf")}
        cpu_before = cpu_seconds(process_tree(gateway.pid))
        started = time.perf_counter()
        response = httpx.post(f"http://{HOST}:{gateway_port}/v1/ocr", files=files, timeout=600)
        wall = time.perf_counter() - started
        # The render workers are the gateway's children: count their CPU too, while they still exist.
        cpu = cpu_seconds(process_tree(gateway.pid)) - cpu_before
        if response.status_code != 200:
            print(f"document bench: HTTP {response.status_code}: {response.text[:300]}", file=sys.stderr)
            return 1
        pages = response.json()["pages"]
        failed = sum(1 for page in pages if page["status"] == "failed")
        ideal = args.pages / args.concurrency * args.service_ms / 1000
        print(f"== {args.pages}-page PDF (scanned A4, rendered at 200 dpi) through the gateway, /v1/ocr, one request")
        print(
            f"stand-in: {args.service_ms:.0f} ms per page, {args.concurrency} at once; gateway page slots: "
            f"{args.concurrency}"
        )
        print(
            f"wall time {wall:.2f} s   ideal {ideal:.2f} s   ratio {wall / ideal:.3f} (target <= 1.15)   "
            f"failed pages {failed}"
        )
        print(
            f"gateway CPU {cpu:.2f} s for {len(pages)} pages = {cpu / len(pages) * 1000:.0f} ms per page "
            "(gateway process + render workers; render, resize, PNG, request, parse)"
        )
        return 0 if failed == 0 else 1
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
