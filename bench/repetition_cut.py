"""`python -m bench.repetition_cut --base-url URL`: what vLLM's `repetition_detection` saves on a looping page.

Sends one page (an image file) to any OpenAI-compatible server, in the request shape the gateway uses for the
model (its prefix, prompt and sampling from model_configs/), N times with the config's `repetition_detection`
and N times without, and prints per variant: finish reasons, completion tokens and wall time (means). On a
page that loops, "with" should end early (finish_reason "repetition") where "without" runs to the token cap.

The real measurement belongs on a GPU (or the real-vLLM CPU tier) with a page that makes the model loop; the
stand-in only shows the mechanics (tests/bench/test_repetition_cut.py).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT


def request_body(config: ModelConfig, prompt: str, image: bytes, media_type: str, *, cut: bool) -> dict[str, Any]:
    """The gateway's document request for `config`, with or without the config's repetition_detection."""
    sampling = config.sampling
    url = f"data:{media_type};base64," + base64.b64encode(image).decode("ascii")
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}]
    if config.prompt_prefix + prompt:
        content.append({"type": "text", "text": config.prompt_prefix + prompt})
    body: dict[str, Any] = {
        **sampling.extra_body,
        "model": config.name,
        "messages": [{"role": "user", "content": content}],
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_completion_tokens": sampling.max_completion_tokens,
    }
    if cut and sampling.repetition_detection is not None:
        body["repetition_detection"] = sampling.repetition_detection.model_dump()
    return body


def run(base_url: str, body: dict[str, Any], rounds: int, timeout_s: float) -> dict[str, Any]:
    """`rounds` requests one after another: finish reasons, mean completion tokens and seconds."""
    reasons: Counter[str] = Counter()
    tokens: list[int] = []
    seconds: list[float] = []
    with httpx.Client(timeout=timeout_s) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.post(base_url.rstrip("/") + "/chat/completions", json=body)
            seconds.append(time.perf_counter() - started)
            response.raise_for_status()
            data = response.json()
            reasons[str(data["choices"][0].get("finish_reason"))] += 1
            tokens.append(int((data.get("usage") or {}).get("completion_tokens", 0)))
    return {"finish_reasons": dict(reasons), "tokens": statistics.mean(tokens), "seconds": statistics.mean(seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="an OpenAI-compatible /v1 URL (vLLM, or the gateway)")
    parser.add_argument("--model", default="dots-ocr", help="a model config name (its prompt and sampling)")
    parser.add_argument("--prompt", default="ocr", help="the config's prompt key (ocr, layout_all, ...)")
    parser.add_argument("--image", type=Path, default=PROJECT_ROOT / "tests/fixtures/documents/dotsocr_demo_image1.jpg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    config = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")[args.model]
    prompt = (PROJECT_ROOT / "prompts" / config.prompts[args.prompt]).read_bytes().decode("utf-8")
    media_type = "image/png" if args.image.suffix.lower() == ".png" else "image/jpeg"
    image = args.image.read_bytes()
    print(f"== repetition_detection {config.sampling.repetition_detection} on {args.image.name}, {args.rounds} rounds")
    print(f"{'variant':10} {'tokens':>8} {'seconds':>8}  finish reasons")
    for name, cut in (("with", True), ("without", False)):
        body = request_body(config, prompt, image, media_type, cut=cut)
        result = run(args.base_url, body, args.rounds, args.timeout)
        print(f"{name:10} {result['tokens']:>8.0f} {result['seconds']:>8.2f}  {result['finish_reasons']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
