"""`python -m bench.document_cpu`: the gateway's CPU per document page, step by step, on the fixture pages.

Decode + resize + PNG encode (prepare_image), then parsing a dots.ocr-format answer and rendering Markdown,
each timed in-process (median of N rounds, one core). No servers: this is the work the gateway adds per
page on top of the model's time. Target on the development machine: <= 60 ms for the 1700x2250 JPEG.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from gateway.documents.images.prepare import prepare_image
from gateway.documents.output.layout import parse_layout_output
from gateway.documents.output.markdown import layout_markdown
from gateway.models.registry import ImagePolicy
from launchers.vllm_standin.dots_answers import dots_ocr_answer

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "documents"
DOTS_POLICY = ImagePolicy(min_pixels=3136, max_pixels=11289600, factor=28)
LAYOUT_PROMPT = (Path(__file__).resolve().parent.parent / "prompts" / "dots-ocr" / "layout_all_en.txt").read_text()


def _median_ms(step: Callable[[], T], rounds: int) -> tuple[float, T]:
    times, result = [], step()  # the first call warms caches and is not counted
    for _ in range(rounds):
        started = time.perf_counter()
        result = step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def page_row(path: Path, rounds: int) -> str:
    """One table row: the steps' median milliseconds for one fixture page."""
    data = path.read_bytes()
    prepare_ms, prepared = _median_ms(
        partial(prepare_image, data, DOTS_POLICY, param="file", max_pixels=64_000_000), rounds
    )
    width, height = prepared.geometry.model
    image_part = {"type": "image_url", "image_url": {"url": prepared.data_url()}}
    request = {"messages": [{"role": "user", "content": [image_part, {"type": "text", "text": LAYOUT_PROMPT}]}]}
    answer = dots_ocr_answer(request)
    parse_ms, parsed = _median_ms(
        partial(parse_layout_output, answer, width=width, height=height, with_text=True), rounds
    )
    markdown_ms, _ = _median_ms(partial(layout_markdown, parsed.elements, skip_headers_footers=False), rounds)
    total = prepare_ms + parse_ms + markdown_ms
    sizes = ["x".join(map(str, size)) for size in (prepared.geometry.original, prepared.geometry.model)]
    steps = f"{prepare_ms:9.1f} {parse_ms:7.2f} {markdown_ms:9.2f} {total:9.1f}"
    return f"{path.name:30} {sizes[0]:>11} {sizes[1]:>11} {steps}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"== gateway CPU per document page (in-process, one core, median of {args.rounds} rounds)")
    print(f"{'page':30} {'size':>11} {'model in':>11} {'prepare':>9} {'parse':>7} {'markdown':>9} {'total ms':>9}")
    for path in sorted(FIXTURES.glob("*.jpg")) + sorted(FIXTURES.glob("*.png")):
        print(page_row(path, args.rounds))


if __name__ == "__main__":
    main()
