"""DeepSeek-OCR-2 through the gateway, against the real vLLM serving a random DeepseekOCR2ForCausalLM.

The server runs with the launcher's argv for model_configs/deepseek-ocr-2.yaml, the recipe's n-gram logits
processor included, and every request carries the config's `vllm_xargs` and `skip_special_tokens: false`.
The language model is tiny; the vision encoders are not (vLLM builds SAM ViT-B and a 24-layer Qwen2 at their
real sizes whatever the config says), so the weights are vLLM's dummy ones and the pages few.

DeepSeek-OCR-2 has one resolution mode: a 1024 px global view (256 tokens), plus 768 px tiles (144 tokens
each) on a 2-6 tile grid chosen by aspect ratio once a side passes 768 px, plus one separator token. The
gateway sends a page unresampled up to six tiles' worth of pixels (factor 1) and shrinks a larger one; vLLM's
count must be this rule's on the size the gateway sent.
"""

from __future__ import annotations

import math

import httpx
import pytest

from tests.real_vllm.gateway_pages import (
    PAGE,
    PDF,
    assert_boxes_inside,
    blank_png,
    one_page,
    post_file,
    prompt_tokens_per_attempt,
    sent_size,
)
from tests.real_vllm.helpers import metric_samples, total
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "deepseek-ocr-2"
TILE = 768
GLOBAL_VIEW_TOKENS = 256
TILE_TOKENS = 144


def tile_grid(width: int, height: int) -> tuple[int, int]:
    """(columns, rows) of 768 px tiles: of the grids with 2 to 6 tiles, the one whose aspect ratio is closest to
    the image's; on a tie the later (larger) grid when the image covers more than half of it."""
    grids = sorted(
        {(cols, rows) for cols in range(1, 7) for rows in range(1, 7) if 2 <= cols * rows <= 6},
        key=lambda grid: grid[0] * grid[1],
    )
    best, best_diff = (1, 1), math.inf
    for cols, rows in grids:
        diff = abs(width / height - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * TILE * TILE * cols * rows:
            best = (cols, rows)
    return best


def image_tokens(width: int, height: int) -> int:
    """The tokens DeepSeek-OCR-2 spends on a width x height image (vLLM deepseek_ocr2.py)."""
    if width <= TILE and height <= TILE:
        return GLOBAL_VIEW_TOKENS + 1
    cols, rows = tile_grid(width, height)
    return GLOBAL_VIEW_TOKENS + TILE_TOKENS * cols * rows + 1


def test_vllm_counts_the_resolution_mode_of_the_size_the_gateway_sent(
    server: RealVllmServer, gateway: GatewayServer
) -> None:
    # The global view alone (no side over 768 px), and a page one pixel past it, cut into a 2 x 1 grid: what
    # is left after the rule's image tokens is the OCR prompt's own tokens, the same for both.
    policy = server.launch.image_policy
    remainders = {}
    for width, height, expected in ((600, 700, 257), (769, 385, 545)):
        sent = sent_size(width, height, policy)
        assert sent == (width, height)  # inside the bounds and factor 1: sent as it is
        assert image_tokens(*sent) == expected
        page = one_page(post_file(gateway, "/v1/ocr", blank_png(width, height), "page.png", model=MODEL))
        remainders[(width, height)] = prompt_tokens_per_attempt(page) - expected
    [text_tokens] = set(remainders.values())
    assert 0 < text_tokens < 32, remainders  # the begin-of-sentence token, "\n" and "Free OCR."


def _max_tokens_asked(server: RealVllmServer) -> tuple[float, float]:
    """(sum, count) of the `max_tokens` vLLM was asked for, over every request so far."""
    with httpx.Client(timeout=60) as http:
        samples = metric_samples(http, server)
    return total(samples, "vllm:request_params_max_tokens_sum"), total(samples, "vllm:request_params_max_tokens_count")


def test_a_page_through_ocr_costs_the_most_tokens_and_keeps_its_output_budget(
    server: RealVllmServer, gateway: GatewayServer
) -> None:
    # 1700 x 2250 passes six tiles' worth of pixels: the gateway shrinks it (1635 x 2164), vLLM cuts a 2 x 3
    # grid, and the image costs the most this model ever spends on one, the planner's image_tokens_max.
    sent = sent_size(1700, 2250, server.launch.image_policy)
    assert sent == (1635, 2164)
    assert image_tokens(*sent) == server.launch.config.architecture.image_tokens_max == 1121
    asked_before = _max_tokens_asked(server)
    page = one_page(post_file(gateway, "/v1/ocr", PAGE.read_bytes(), "page.jpg", model=MODEL))
    assert (page["width"], page["height"]) == (1700, 2250)
    assert 0 < prompt_tokens_per_attempt(page) - 1121 < 32  # the begin-of-sentence token, "\n" and "Free OCR."
    # Every attempt asked for the 24 tokens the client did: the gateway once counted this page as w x h image
    # tokens (factor 1) and left it 1 token to answer in, once the server had reported its context length.
    asked_after = _max_tokens_asked(server)
    attempts = asked_after[1] - asked_before[1]
    assert attempts == page["attempts"]
    assert asked_after[0] - asked_before[0] == 24 * attempts


def test_a_pdf_page_through_layout_is_accepted_and_well_formed(server: RealVllmServer, gateway: GatewayServer) -> None:
    # Grounding mode: "<|grounding|>Convert the document to markdown." At 36 dpi the page is 421 x 596, the
    # global view alone (garbage never holds <|ref|>/<|det|> tags, so the page is retried: keep it cheap).
    response = post_file(gateway, "/v1/layout", PDF.read_bytes(), "doc.pdf", model=MODEL, dpi="36", pages="1")
    page = one_page(response)
    assert (page["width"], page["height"]) == (421, 596)
    assert image_tokens(421, 596) == 257
    assert 0 < prompt_tokens_per_attempt(page) - 257 < 64
    assert_boxes_inside(page)
