"""LightOnOCR through the gateway, against the real vLLM serving a tiny random LightOnOCRForConditionalGeneration.

The server runs with the launcher's argv for model_configs/lightonocr.yaml. vLLM counts a page's image tokens
with Pixtral's rule (shrink to a 1540 px longest edge, then one token per 28 px square, rounded up); the
gateway must send every page at a size that rule keeps, or vLLM resizes it again behind the gateway's back.
Random weights answer garbage: what is checked is the arithmetic, that the request the gateway builds (the
image alone for OCR, `grounding` for layout, the config's sampling) is accepted, and the answer's shape.
"""

from __future__ import annotations

import pytest

from tests.real_vllm.gateway_pages import (
    PAGE,
    assert_boxes_inside,
    blank_png,
    one_page,
    patch_tokens,
    post_file,
    prompt_tokens_per_attempt,
    sent_size,
)
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "lightonocr"
TOKEN_SIDE = 28  # Pixtral's 14 px patches merged 2 x 2
# What the chat template wraps around the image: "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n".
OCR_TEXT_TOKENS = 16


# (width, height): whole patches inside the bounds; odd sides (padded); a page over the 1540 px side (the
# downscale); wide, within the area but over the side; smaller than the minimum (scaled up).
SIZES = [(560, 784), (333, 517), (1700, 2250), (2000, 300), (20, 20)]


def test_vllm_counts_the_image_tokens_of_the_size_the_gateway_sent(
    server: RealVllmServer, gateway: GatewayServer
) -> None:
    # OCR sends the image alone, so what is not the image is the chat template's own tokens, the same for
    # every page. Before max_side (1540) was in the policy, 1700x2250 went out 1316x1764 and vLLM counted 2,255
    # image tokens (1148x1540) where the gateway's size makes 2,961.
    policy = server.launch.image_policy
    assert policy.max_side == 1540
    remainders = {}
    for width, height in SIZES:
        page = one_page(post_file(gateway, "/v1/ocr", blank_png(width, height), "page.png", model=MODEL))
        remainders[(width, height)] = prompt_tokens_per_attempt(page) - patch_tokens(
            sent_size(width, height, policy), TOKEN_SIDE
        )
    assert set(remainders.values()) == {OCR_TEXT_TOKENS}, remainders


@pytest.mark.parametrize("path", ["/v1/ocr", "/v1/layout"])
def test_a_page_through_ocr_and_layout_is_accepted_and_well_formed(
    server: RealVllmServer, gateway: GatewayServer, path: str
) -> None:
    page = one_page(post_file(gateway, path, PAGE.read_bytes(), "page.jpg", model=MODEL))
    assert (page["width"], page["height"]) == (1700, 2250)
    # The page went out 1148x1540 (41 x 55 tokens); layout adds its `grounding` prompt to the template's.
    image_tokens = patch_tokens(sent_size(1700, 2250, server.launch.image_policy), TOKEN_SIDE)
    assert image_tokens == 41 * 55
    prompt_text_tokens = prompt_tokens_per_attempt(page) - image_tokens - OCR_TEXT_TOKENS
    assert prompt_text_tokens == 0 if path == "/v1/ocr" else 0 < prompt_text_tokens < 8
    assert_boxes_inside(page)
