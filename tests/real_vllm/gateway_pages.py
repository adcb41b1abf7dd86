"""The gateway in front of a real vLLM server, as the tier's tests drive it, and the token arithmetic that checks
the pages it sends.

vLLM reports `usage.prompt_tokens`: the chat template's text, the prompt, and the image tokens of the image it
finally encoded. The gateway prepares every page at a size the model's processor keeps as it is, so a page's
prompt tokens must be exactly: the official prompt rendered by the model's own template (counted by the
server's `/tokenize`), plus the tokens around the image placeholder, plus one per patch of the size the gateway
sent. Any other number means vLLM resized the page again (boxes would no longer map back) or the gateway did
not send the official prompt.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from gateway.documents.images.geometry import smart_resize
from gateway.documents.images.prepare import padded_size
from gateway.models.registry import ImagePolicy, PromptKey
from gateway.settings import PROJECT_ROOT
from tests.conftest import gateway_settings
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image1.jpg"  # 1700 x 2250, a scanned page
PDF = FIXTURES / "dotsocr_demo_pdf1.pdf"  # two pages
SHORT = {"max_completion_tokens": "24"}  # random text: a few tokens show the whole path as well as many


def start_gateway(model: str, upstreams: list[str], store: Path, **overrides: Any) -> GatewayServer:
    """A ready gateway serving `model` from `upstreams`; `overrides` are Settings fields."""
    # Real timeouts: a tiny model on 2 cores still takes a second or two per page under load, DeepSeek-OCR-2's
    # real-size vision encoders several.
    values: dict[str, Any] = {
        "store_path": store,
        "read_timeout_s": 300.0,
        "health_timeout_s": 5.0,
        "health_interval_s": 0.5,
        **overrides,
    }
    gateway = GatewayServer(gateway_settings({model: upstreams}, **values)).start()
    gateway.wait_ready()
    return gateway


def blank_png(width: int, height: int) -> bytes:
    """A blank (near-white) RGB page of that size, PNG-encoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (250, 250, 250)).save(buffer, "PNG")
    return buffer.getvalue()


def post_file(gateway: GatewayServer, path: str, data: bytes, name: str, **fields: str) -> httpx.Response:
    """A multipart upload to a document endpoint, with a short output budget unless `fields` set one."""
    files = {"file": (name, data, "application/octet-stream")}
    return httpx.post(gateway.root_url + path, files=files, data={**SHORT, **fields}, timeout=600)


def one_page(response: httpx.Response) -> dict[str, Any]:
    """The only page of a 200 document response, read as well-formed (never failed on garbage text)."""
    assert response.status_code == 200, response.text
    [page] = response.json()["pages"]
    assert page["status"] in ("ok", "repaired", "degraded"), page
    page_dict: dict[str, Any] = page
    return page_dict


def prompt_tokens_per_attempt(page: dict[str, Any]) -> int:
    """One attempt's prompt tokens: the page's usage adds up its attempts (retries send the same prompt)."""
    total: int = page["usage"]["prompt_tokens"]
    attempts: int = page["attempts"]
    assert total > 0, page
    assert total % attempts == 0, page
    return total // attempts


def sent_size(width: int, height: int, policy: ImagePolicy) -> tuple[int, int]:
    """(width, height) the gateway sends a page at: padded to whole patches within the bounds, else resized."""
    padded = padded_size(width, height, policy)
    if padded is not None:
        return padded
    model_height, model_width = smart_resize(height, width, policy)
    return model_width, model_height


def patch_tokens(size: tuple[int, int], side: int) -> int:
    """Image tokens of a (width, height) image that costs one token per `side` x `side` pixels."""
    width, height = size
    return (width // side) * (height // side)


def image_tokens(width: int, height: int, policy: ImagePolicy) -> int:
    """The image tokens of the page the gateway sends: one per factor x factor square."""
    return patch_tokens(sent_size(width, height, policy), policy.factor)


def official_prompt(server: RealVllmServer, key: PromptKey = "ocr") -> str:
    """The prompt file the model's config names (pinned to its source by tests/test_prompts.py), with its prefix."""
    config = server.launch.config
    return config.prompt_prefix + (PROJECT_ROOT / "prompts" / config.prompts[key]).read_bytes().decode("utf-8")


def template_tokens(server: RealVllmServer, text: str) -> int:
    """Tokens of one user message holding only `text`, rendered by the server's chat template (vLLM `/tokenize`)."""
    body = {
        "model": server.model_name,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "add_generation_prompt": True,
    }
    response = httpx.post(f"{server.root_url}/tokenize", json=body, timeout=60)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def assert_boxes_inside(page: dict[str, Any]) -> None:
    """Every element's box lies in the upload's pixels, whatever the model answered."""
    for element in page.get("elements", []):
        x1, y1, x2, y2 = element["bbox"]
        assert 0 <= x1 < x2 <= page["width"], element
        assert 0 <= y1 < y2 <= page["height"], element


def assert_image_tokens_counted(
    gateway: GatewayServer, server: RealVllmServer, text_tokens: int, size: tuple[int, int]
) -> None:
    """A blank page of `size` through `/v1/ocr`: vLLM counted the prompt's text and the image tokens of exactly
    the size the gateway sent, so it did not resize the page again."""
    width, height = size
    page = one_page(post_file(gateway, "/v1/ocr", blank_png(width, height), "page.png"))
    assert prompt_tokens_per_attempt(page) == text_tokens + image_tokens(width, height, server.launch.image_policy)


def assert_ocr_page_well_formed(gateway: GatewayServer, server: RealVllmServer, text_tokens: int) -> None:
    """PAGE through `/v1/ocr` (an OCR-only model: no elements): the document answer's shape, the page at its
    upload's size, the prompt vLLM counted, and usage adding up."""
    response = post_file(gateway, "/v1/ocr", PAGE.read_bytes(), "page.jpg")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["model"]) == ("document.ocr", server.model_name)
    [page] = body["pages"]
    assert page["status"] in ("ok", "repaired", "degraded")
    assert (page["width"], page["height"]) == (1700, 2250)
    assert isinstance(page["markdown"], str)
    assert "elements" not in page or page["elements"] == []
    assert prompt_tokens_per_attempt(page) == text_tokens + image_tokens(1700, 2250, server.launch.image_policy)
    assert page["usage"]["completion_tokens"] >= page["attempts"]
    assert body["usage"] == page["usage"]
