"""The gateway in front of a real vLLM server, as the tier's tests drive it: started with real timeouts, pages
posted to its document endpoints, and the size it sends a page at under a model's image policy, which is what
vLLM's own image-token count is checked against.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from gateway.documents.images.geometry import smart_resize
from gateway.documents.images.prepare import padded_size
from gateway.models.registry import ImagePolicy
from tests.conftest import gateway_settings
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
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


def prompt_tokens(page: dict[str, Any]) -> int:
    """The prompt tokens vLLM counted for one attempt at the page (usage adds up the attempts)."""
    tokens: int = page["usage"]["prompt_tokens"] // page["attempts"]
    assert tokens > 0, page
    return tokens


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


def assert_boxes_inside(page: dict[str, Any]) -> None:
    """Every element's box lies in the upload's pixels, whatever the model answered."""
    for element in page.get("elements", []):
        x1, y1, x2, y2 = element["bbox"]
        assert 0 <= x1 < x2 <= page["width"], element
        assert 0 <= y1 < y2 <= page["height"], element
