"""`python -m bench.memory_bombs`: the gateway's peak and remaining RSS under memory bombs (issue 15, item 5/7).

Each scenario gets a fresh gateway process (`python -m gateway`, default settings) on loopback, in front of an
in-process vLLM stand-in answering as dots.ocr and a hostile upstream (`tests/hostile_upstream.py`) serving the
chat model. Printed per scenario: the gateway's RSS idle, its peak (VmHWM) and its RSS 3 s after the last answer,
and the answers' statuses. `--gateway-dir DIR` runs the gateway from another checkout, to compare before and
after (`git archive <commit> gateway model_configs prompts | tar -x -C DIR`).

    image x1 / x8    a 7999x7999 PNG (~73 KB, under the 64 MP cap) to /v1/ocr, once, then 8 at once
    huge answer      a 300 MB non-streamed chat answer
    gzip bomb        a ~300 KB gzip body that inflates to 300 MB
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from PIL import Image, ImageDraw

from bench.processes import HOST, free_port, proc_status_kb, spawn, stop, wait_http_200
from launchers.vllm_standin import StandinConfig, StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.hostile_upstream import HostileUpstream

ROOT = Path(__file__).resolve().parent.parent
OCR, CHAT = "dots-ocr", "qwen3-vl-2b"
MB = 1024 * 1024


def image_bomb() -> bytes:
    """A 7999x7999 RGB page, nearly blank: decodes to 192 MB from a file of under 100 KB."""
    image = Image.new("RGB", (7999, 7999), "white")
    draw = ImageDraw.Draw(image)
    for y in range(200, 7800, 400):
        draw.line((200, y, 7800, y), fill="black", width=3)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _ocr(root: str, data: bytes) -> int:
    files = {"file": ("bomb.png", data, "image/png")}
    return httpx.post(root + "/v1/ocr", files=files, timeout=300).status_code


def _chat(root: str) -> int:
    body = {"model": CHAT, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(root + "/v1/chat/completions", json=body, timeout=300).status_code


def scenario(
    name: str, standin: StandinServer, hostile: HostileUpstream, send: Callable[[str], list[int]], cwd: Path
) -> str:
    port = free_port()
    env = dict(os.environ)
    env.update(
        GATEWAY_HOST=HOST,
        GATEWAY_PORT=str(port),
        GATEWAY_MODELS=f"{OCR},{CHAT}",
        GATEWAY_UPSTREAMS=orjson.dumps({OCR: standin.base_url, CHAT: hostile.base_url}).decode(),
        GATEWAY_STORE_PATH=str(Path(tempfile.mkdtemp()) / "store.sqlite3"),
        GATEWAY_CACHE_MAX_BYTES="0",
        GATEWAY_LOG_FORMAT="text",
    )
    logs = Path(tempfile.mkdtemp())
    proc = spawn("gateway", [sys.executable, "-m", "gateway"], env, cwd, logs / "gateway.log")
    try:
        wait_http_200(proc, port, "/ready", timeout_s=30)
        time.sleep(1.0)
        idle = proc_status_kb(proc.pid, "VmRSS")
        statuses = send(f"http://{HOST}:{port}")
        time.sleep(3.0)
        peak, after = proc_status_kb(proc.pid, "VmHWM"), proc_status_kb(proc.pid, "VmRSS")
    finally:
        stop(proc)
    codes = ",".join(str(code) for code in sorted(set(statuses)))
    return f"{name:<14} {idle / 1024:>8.0f} {peak / 1024:>8.0f} {after / 1024:>8.0f}   {codes}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-dir", type=Path, default=ROOT, help="run the gateway from this checkout")
    cwd = parser.parse_args().gateway_dir.resolve()
    bomb = image_bomb()
    standin = StandinServer(StandinConfig(models=(OCR,), responder=dots_ocr_answer, max_model_len=32768)).start()
    hostile = HostileUpstream(CHAT, "huge", 300 * MB).start()
    try:
        print(f"gateway from {cwd}; image bomb: 7999x7999 PNG, {len(bomb) / 1024:.0f} KB; gateway RSS in MB")
        print(f"{'scenario':<14} {'idle':>8} {'peak':>8} {'after':>8}   statuses")
        print(scenario("image x1", standin, hostile, lambda root: [_ocr(root, bomb)], cwd))
        with ThreadPoolExecutor(8) as pool:
            eight = lambda root: list(pool.map(lambda _: _ocr(root, bomb), range(8)))  # noqa: E731
            print(scenario("image x8", standin, hostile, eight, cwd))
        print(scenario("huge answer", standin, hostile, lambda root: [_chat(root)], cwd))
        hostile.mode = "gzip_bomb"
        print(scenario("gzip bomb", standin, hostile, lambda root: [_chat(root)], cwd))
    finally:
        hostile.stop()
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
