"""moondream3 behind the gateway, on the real vLLM (CPU build) serving a random Moondream3ForCausalLM.

The server runs the launcher's argv for model_configs/moondream3.yaml alone on a 24 GB card (it fits no 16 GB
one: vllm_server.PLAN_GPU_GIB_FOR). Moondream3 has no transformers class to write a
checkpoint with, so the folder holds config.json and a tokenizer and vLLM's dummy loader fills the weights
(vllm_server.DUMMY_WEIGHT_SUBSTITUTIONS). The config is tiny except where the image arithmetic lives: 378 px
crops of 14 px patches, at most 12 crops, an overlap margin of 4 patches, and `enc_n_layers` 27, which vLLM's
encoder also uses as the side of the pooled local-feature grid (it must equal the 27 x 27 crop grid).

vLLM spends a fixed 730 tokens on any image: its prompt update replaces `<|endoftext|><image>` with the BOS
token and 729 image tokens (27 x 27), whatever the crops (a global one and 1 to 12 local ones, pooled to one
grid). The config says the same (`image_tokens_max: 730`). Chat requests are forwarded as they come, so the
sizes below are what a client might send: the config's own bounds, and sizes outside them.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.real_vllm.gateway_pages import blank_png, template_tokens
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "moondream3"
QUESTION = "What is written on this page?"
# (width, height): the policy's minimum (one 378 px crop), 2 x 3 crops, the policy's maximum (12 crops' pixels),
# smaller than one crop, and a wide strip past the maximum.
SIZES = [(378, 378), (756, 1134), (1134, 1512), (200, 150), (3000, 400)]


def _messages(image: bytes | None) -> list[dict[str, Any]]:
    """One user message: the image (if any) as a data URL, then the question."""
    parts: list[dict[str, Any]] = []
    if image is not None:
        url = "data:image/png;base64," + base64.b64encode(image).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
    parts.append({"type": "text", "text": QUESTION})
    return [{"role": "user", "content": parts}]


def _chat(gateway: GatewayServer, image: bytes | None) -> dict[str, Any]:
    body = {"model": MODEL, "messages": _messages(image), "max_completion_tokens": 8}
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_vllm_spends_the_configs_fixed_image_prefix_on_every_size(
    server: RealVllmServer, gateway: GatewayServer
) -> None:
    # The text-only prompt starts with the same BOS the image prefix begins with; everything after the prefix
    # is the same text. So an image adds exactly image_tokens_max - 1 tokens, whatever its size and crops.
    prefix = server.launch.config.architecture.image_tokens_max
    assert prefix == 730
    text_only = _chat(gateway, None)["usage"]["prompt_tokens"]
    # The checkpoint has no chat template: vLLM renders its Moondream3Processor's default, which routes any
    # question but "caption ..."/"describe ..." to `query` (BOS, <|md_reserved_0|>query<|md_reserved_1|>, the
    # question, <|md_reserved_2|>). The gateway forwards the message as it came.
    assert text_only == template_tokens(server, QUESTION)
    added = {size: _chat(gateway, blank_png(*size))["usage"]["prompt_tokens"] - text_only for size in SIZES}
    assert set(added.values()) == {prefix - 1}, added


def test_chat_with_an_image_through_the_gateway_has_the_openai_shape(gateway: GatewayServer) -> None:
    answer = _chat(gateway, blank_png(756, 1134))
    assert answer["object"] == "chat.completion"
    assert answer["model"] == MODEL
    [choice] = answer["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 8
