"""dots.mocr through the gateway, against the real vLLM serving the tiny dots.ocr model under dots.mocr's name.

dots.mocr's checkpoint is dots.ocr's architecture with the same config and processor (DotsOCRForCausalLM,
Qwen2VLProcessor, <|img|><|imgpad|><|endofimg|>), so the dots-ocr tiny spec stands in for it; what is its
own is the launcher's argv from model_configs/dots-mocr.yaml, the served name and the prompts, web-page
parsing and scene spotting among them. Each prompt is checked to reach vLLM as the official text: the
prompt tokens vLLM counted are the page's image tokens plus those of the chat the prompt makes, as vLLM's
own /tokenize counts it.
"""

from __future__ import annotations

import httpx
import pytest

from gateway.documents.images.prepare import PageGeometry
from gateway.models.registry import PromptKey, load_registry
from gateway.settings import Settings
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

MODEL = "dots-mocr"
TOKEN_SIDE = 28


def _prompt(key: PromptKey) -> str:
    """A dots.mocr prompt as its official client sends it: vLLM's image placeholder, then the prompt's exact text."""
    settings = Settings()
    path = settings.prompts_dir / load_registry(settings.model_configs_dir, settings.prompts_dir)[MODEL].prompts[key]
    return "<|img|><|imgpad|><|endofimg|>" + path.read_bytes().decode("utf-8")


def _chat_tokens(server: RealVllmServer, text: str) -> int:
    """Tokens of a one-message chat holding `text`, as vLLM counts it (its <|imgpad|> still one token)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "add_generation_prompt": True}
    response = httpx.post(f"{server.root_url}/tokenize", json=body, timeout=60)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def test_vllm_counts_the_image_tokens_of_the_size_the_gateway_sent(
    server: RealVllmServer, gateway: GatewayServer
) -> None:
    # Below the cap (padded to whole patches), odd sides, above it (downsized), wide: image tokens and the OCR
    # prompt's chat add up to what vLLM counted, every time.
    policy = server.launch.image_policy
    chat = _chat_tokens(server, _prompt("ocr")) - 1
    for width, height in [(560, 784), (333, 517), (1700, 2250), (2000, 300)]:
        page = one_page(post_file(gateway, "/v1/ocr", blank_png(width, height), "page.png", model=MODEL))
        assert prompt_tokens_per_attempt(page) == patch_tokens(sent_size(width, height, policy), TOKEN_SIDE) + chat, (
            width,
            height,
        )


@pytest.mark.parametrize(
    ("path", "mode", "key"),
    [
        ("/v1/ocr", None, "ocr"),
        ("/v1/layout", "all", "layout_all"),
        ("/v1/layout", "detect", "layout_detect"),
        ("/v1/layout", "web", "layout_web"),
        ("/v1/layout", "scene", "layout_scene"),
    ],
)
def test_each_prompt_reaches_vllm_as_the_official_text(
    server: RealVllmServer, gateway: GatewayServer, path: str, mode: str | None, key: PromptKey
) -> None:
    fields = {"model": MODEL} | ({"mode": mode} if mode else {})
    page = one_page(post_file(gateway, path, PAGE.read_bytes(), "page.jpg", **fields))
    assert (page["width"], page["height"]) == (1700, 2250)
    image_tokens = patch_tokens(sent_size(1700, 2250, server.launch.image_policy), TOKEN_SIDE)
    assert prompt_tokens_per_attempt(page) == image_tokens + _chat_tokens(server, _prompt(key)) - 1
    assert_boxes_inside(page)


def test_a_region_is_read_with_its_box_in_model_input_pixels(server: RealVllmServer, gateway: GatewayServer) -> None:
    # Grounding OCR: the prompt ends with the box in the pixels of the image sent (the page is downsized).
    box = (100, 200, 900, 600)
    page = one_page(post_file(gateway, "/v1/ocr", PAGE.read_bytes(), "page.jpg", model=MODEL, bbox="100,200,900,600"))
    sent = sent_size(1700, 2250, server.launch.image_policy)
    x1, y1, x2, y2 = PageGeometry((1700, 2250), sent).to_model(box)
    text = _prompt("grounding") + f"[{x1}, {y1}, {x2}, {y2}]"
    assert prompt_tokens_per_attempt(page) == patch_tokens(sent, TOKEN_SIDE) + _chat_tokens(server, text) - 1
