"""GLM-OCR (`GlmOcrForConditionalGeneration`) behind the gateway, on the real vLLM (CPU build, tiny model).

The server runs the launcher's own argv for glm-ocr, MTP speculative decoding included (the tiny checkpoint
carries the draft layer after its decoder, as the hub's does), with the pixel cap lowered to `CAP` as a memory
plan lowers it, so a whole page and its prompt fit the CPU server's 4,096-token context; the gateway is told the
same cap, as `launchers up` does. Random weights answer garbage: what is checked is the request the gateway
builds (accepted, the official "Text Recognition:" prompt, exact image tokens) and the shape of its answer. No
/v1/layout: the config offers OCR only (the page's boxes come from a separate detector in GLM-OCR's SDK).

GLM-OCR's processor keeps 2 · h · w within `size` (an image counts as temporal_patch_size = 2 frames) and ignores
min_pixels/max_pixels, from which vLLM nevertheless sized its encoder cache: with the first config's kwargs every
page over about 2,500 image tokens was refused (model_configs/glm-ocr.yaml). The sizes below find that again.
"""

from __future__ import annotations

import httpx
import pytest

from tests.real_vllm.backends import IMAGE_OVERHEAD, vllm_backend
from tests.real_vllm.conftest import TIER_OVERRIDES
from tests.real_vllm.gateway_pages import (
    assert_image_tokens_counted,
    assert_ocr_page_well_formed,
    blank_png,
    official_prompt,
    post_file,
    template_tokens,
)
from tests.real_vllm.helpers import metric_samples, total
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "glm-ocr"
CAP = TIER_OVERRIDES[MODEL].max_pixels  # the cap the tier serves it with (conftest.py says why)
# Within the bounds (sent padded), odd sides, a wide strip, under the 12,544 px minimum (scaled up), an A4 scan
# at 300 DPI (8.7 MP: scaled down to the cap, 3,600 image tokens).
SIZES = [(560, 784), (641, 1799), (2000, 300), (100, 50), (2480, 3508)]


@pytest.fixture(scope="module")
def text_tokens(server: RealVllmServer) -> int:
    """The prompt's tokens besides the image's: the official prompt in the model's template, the image's wrapper."""
    assert official_prompt(server) == "Text Recognition:"
    return template_tokens(server, official_prompt(server)) + IMAGE_OVERHEAD[MODEL]


def test_the_server_runs_the_recipes_mtp_draft_and_the_pixel_bounds_in_its_processors_units(
    server: RealVllmServer,
) -> None:
    argv = server.launch.argv
    assert argv[argv.index("--speculative-config") + 1] == '{"method":"mtp","num_speculative_tokens":3}'
    kwargs = argv[argv.index("--mm-processor-kwargs") + 1]
    assert kwargs == '{"size":{"shortest_edge":25088,"longest_edge":5644800}}'  # 2 x the policy's h x w bounds
    assert server.launch.image_policy.max_pixels == CAP


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_vllm_counts_the_image_tokens_of_the_size_the_gateway_sent(
    gateway: GatewayServer, server: RealVllmServer, text_tokens: int, width: int, height: int
) -> None:
    assert_image_tokens_counted(gateway, server, text_tokens, (width, height))


def test_a_page_through_ocr_is_answered_with_the_real_request_shape(
    gateway: GatewayServer, server: RealVllmServer, text_tokens: int
) -> None:
    # vLLM took the gateway's request as it is (the SDK's repetition_penalty, repetition_detection, the data: URL)
    # and counted it: 3,588 image tokens, more than the encoder cache vLLM sized from the old max_pixels kwarg.
    assert_ocr_page_well_formed(gateway, server, text_tokens)


def test_sampled_pages_are_drafted_by_mtp_and_leave_the_engine_alive(
    gateway: GatewayServer, server: RealVllmServer
) -> None:
    # With the SDK's top_k 1 in the config, a sampled attempt (a retry at 0.2 or 0.4, or a client's temperature)
    # under MTP drafting killed vLLM's CPU engine ("index -3072 is out of bounds for dimension 1 with size 1024",
    # then a 500 for every request): the config no longer sends top_k (model_configs/glm-ocr.yaml).
    backend = vllm_backend(server)
    with httpx.Client(timeout=60) as http:
        drafts_before = total(metric_samples(http, backend), "vllm:spec_decode_num_draft_tokens_total")
        for temperature in ("0.2", "0.4"):
            response = post_file(gateway, "/v1/ocr", blank_png(560, 784), "page.png", temperature=temperature)
            assert response.status_code == 200, response.text
        assert http.get(f"{server.root_url}/health").status_code == 200
        drafts_after = total(metric_samples(http, backend), "vllm:spec_decode_num_draft_tokens_total")
    assert drafts_after > drafts_before  # the MTP layer drafted (random weights: its drafts are rejected)


def test_layout_is_refused_before_any_upstream_call(gateway: GatewayServer) -> None:
    response = post_file(gateway, "/v1/layout", blank_png(280, 196), "page.png", model=MODEL)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "model"
