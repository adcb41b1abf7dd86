"""`python -m bench.document_cpu`: the gateway's CPU per document page, step by step, on the fixture pages.

Decode + bring to a model-input size + PNG encode (prepare_image), then parsing a dots.ocr-format answer and
rendering Markdown, each timed in-process (median of N rounds, one core). No servers: this is the work the
gateway adds per page on top of the model's time. Target on the development machine: <= 50 ms for the
1700x2250 JPEG.

Each page is prepared both ways the gateway knows, `pad` (the page unresampled, padded white to multiples of
the factor: the default whenever that size is within the model's bounds) and `resize` (bicubic to the
smart_resize size), with a fidelity figure for each: the PSNR of what the model sees, brought back onto the
page (cropped, or resized back bicubic), against the page itself. "exact" means every pixel is the page's.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageChops, ImageStat

from gateway.documents.images.prepare import RESAMPLE, PreparedImage, prepare_image
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


def fidelity(prepared: PreparedImage) -> str:
    """PSNR (dB) of the model's view of the page, brought back to the page's size, against the page."""
    with Image.open(io.BytesIO(prepared.png)) as sent:
        sent.load()
    page = prepared.image
    padded = prepared.geometry.content is not None
    seen = sent.crop((0, 0, *page.size)) if padded else sent.resize(page.size, RESAMPLE)
    squares = ImageStat.Stat(ImageChops.difference(seen, page)).sum2
    mse = sum(squares) / (page.width * page.height * len(squares))
    return "exact" if mse == 0 else f"{10 * math.log10(255**2 / mse):.1f} dB"


def page_rows(path: Path, rounds: int) -> list[str]:
    """Table rows, one per preparation method: the steps' median milliseconds for one fixture page."""
    data = path.read_bytes()
    rows = []
    for method in ("pad", "resize"):
        prepare = partial(prepare_image, data, DOTS_POLICY, param="file", max_pixels=64_000_000, pad=method == "pad")
        prepare_ms, prepared = _median_ms(prepare, rounds)
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
        rows.append(f"{path.name:30} {method:>6} {sizes[0]:>11} {sizes[1]:>11} {steps} {fidelity(prepared):>9}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"== gateway CPU per document page (in-process, one core, median of {args.rounds} rounds)")
    head = f"{'page':30} {'method':>6} {'size':>11} {'model in':>11} {'prepare':>9} {'parse':>7} {'markdown':>9}"
    print(head + f" {'total ms':>9} {'fidelity':>9}")
    for path in sorted(FIXTURES.glob("*.jpg")) + sorted(FIXTURES.glob("*.png")):
        for row in page_rows(path, args.rounds):
            print(row)


if __name__ == "__main__":
    main()
