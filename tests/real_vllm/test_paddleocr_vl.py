"""PaddleOCR-VL (`PaddleOCRVLForConditionalGeneration`) behind the gateway, on the real vLLM (CPU build, tiny model).

The server runs the launcher's own argv for paddleocr-vl on a 16 GB card (`--trust-remote-code`, min/max_pixels
processor kwargs, the recipe's flags), so the gateway's image policy is the config's (147,384 to 2,822,400 px,
factor 28). Random weights answer garbage: what is checked is the request the gateway builds (accepted, the
official "OCR:" prompt, exact image tokens) and the shape of its answer. No /v1/layout: the config offers OCR
only (the page's boxes come from a separate detector in PaddleOCR's pipeline).
"""

from __future__ import annotations

import pytest

from tests.real_vllm.backends import IMAGE_OVERHEAD
from tests.real_vllm.gateway_pages import (
    assert_image_tokens_counted,
    assert_ocr_page_well_formed,
    blank_png,
    official_prompt,
    post_file,
    template_tokens,
)
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "paddleocr-vl"
# Within the bounds (sent padded), odd sides, a wide strip, under the minimum (scaled up), an A4 scan at 300 DPI
# (8.7 MP: scaled down to the 2,822,400 px cap).
SIZES = [(560, 784), (641, 1799), (2000, 300), (100, 50), (2480, 3508)]


@pytest.fixture(scope="module")
def text_tokens(server: RealVllmServer) -> int:
    """The prompt's tokens besides the image's: the official prompt in the model's template, the image's wrapper."""
    assert official_prompt(server) == "OCR:"
    return template_tokens(server, official_prompt(server)) + IMAGE_OVERHEAD[MODEL]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_vllm_counts_the_image_tokens_of_the_size_the_gateway_sent(
    gateway: GatewayServer, server: RealVllmServer, text_tokens: int, width: int, height: int
) -> None:
    assert_image_tokens_counted(gateway, server, text_tokens, (width, height))


def test_a_page_through_ocr_is_answered_with_the_real_request_shape(
    gateway: GatewayServer, server: RealVllmServer, text_tokens: int
) -> None:
    # vLLM took the gateway's request as it is (sampling, repetition_detection, the data: URL) and counted it.
    assert_ocr_page_well_formed(gateway, server, text_tokens)


def test_layout_is_refused_before_any_upstream_call(gateway: GatewayServer) -> None:
    response = post_file(gateway, "/v1/layout", blank_png(280, 196), "page.png", model=MODEL)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "model"
