"""/v1/layout and /v1/ocr through the real HTTP path, with the stand-in answering in dots.ocr's format."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image

from gateway.documents.images.prepare import padded_size, smart_resize
from gateway.models.registry import ImagePolicy
from gateway.settings import PROJECT_ROOT
from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image1.jpg"  # 1700 x 2250
PREFIX = "<|img|><|imgpad|><|endofimg|>"
DOTS_POLICY = ImagePolicy(min_pixels=3136, max_pixels=11289600, factor=28)


def _model_size(width: int, height: int, policy: ImagePolicy) -> tuple[int, int]:
    """(width, height) the gateway sends: the page padded to the factor when that fits, else smart-resized."""
    padded = padded_size(width, height, policy)
    if padded is not None:
        return padded
    model_height, model_width = smart_resize(height, width, policy)
    return model_width, model_height


def _prompt(name: str) -> str:
    return (PROJECT_ROOT / "prompts" / "dots-ocr" / name).read_bytes().decode()


@pytest.fixture
def dots(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)


@pytest.fixture
def docs_gateway(make_gateway: Callable[..., GatewayServer], dots: StandinServer) -> GatewayServer:
    return make_gateway({OCR_MODEL: [dots.base_url]})


def _upload(gateway: GatewayServer, path: str, data: bytes = b"", **fields: str) -> httpx.Response:
    files = {"file": ("page.jpg", data or PAGE.read_bytes(), "image/jpeg")}
    return httpx.post(gateway.root_url + path, files=files, data=fields, timeout=30)


def _sent(standin: StandinServer) -> list[dict[str, Any]]:
    bodies = [r.body for r in standin.state.requests if r.path == "/v1/chat/completions"]
    return [b for b in bodies if b is not None]


def _sent_image_size(body: dict[str, Any]) -> tuple[int, int]:
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:
        return image.size


def test_layout_of_a_page_maps_boxes_to_original_pixels(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    response = _upload(docs_gateway, "/v1/layout")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["model"] == OCR_MODEL
    assert document["status"] == "ok"
    [page] = document["pages"]
    assert (page["page"], page["width"], page["height"]) == (1, 1700, 2250)
    assert page["attempts"] == 1
    categories = [e["category"] for e in page["elements"]]
    assert categories[:3] == ["Page-header", "Title", "Text"]
    assert [e["index"] for e in page["elements"]] == list(range(len(categories)))
    for element in page["elements"]:
        x1, y1, x2, y2 = element["bbox"]
        assert 0 <= x1 < x2 <= 1700
        assert 0 <= y1 < y2 <= 2250
        assert ("text" in element) == (element["category"] != "Picture")
    # The stand-in drew the Title at 12..88 % x 8..13 % of the image it got (the page padded to 1708 x 2268);
    # the page sits unscaled in it, so the box comes back in the same pixels, within rounding.
    title = page["elements"][1]["bbox"]
    assert title == pytest.approx([0.12 * 1708, 0.08 * 2268, 0.88 * 1708, 0.13 * 2268], abs=1)
    assert "# A Simulated Page" in document["markdown"]
    assert "Simulated Journal" in document["markdown"]
    assert "Simulated Journal" not in document["markdown_no_headers"]
    assert document["markdown"] == page["markdown"]


def test_the_request_has_the_official_clients_shape(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    assert _upload(docs_gateway, "/v1/layout").status_code == 200
    [body] = _sent(dots)
    assert body["model"] == OCR_MODEL
    [message] = body["messages"]  # one user message, no system message
    assert message["role"] == "user"
    image_part, text_part = message["content"]
    assert image_part["type"] == "image_url"
    assert text_part == {"type": "text", "text": PREFIX + _prompt("layout_all_en.txt")}
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.1, 1.0, 16384)
    # Sent already at a model-input size (the page padded white to multiples of 28), so vLLM's own resize is
    # a no-op.
    assert _sent_image_size(body) == _model_size(1700, 2250, DOTS_POLICY) == (1708, 2268)


def test_detect_mode_returns_boxes_without_text(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    response = _upload(docs_gateway, "/v1/layout", mode="detect")
    assert response.status_code == 200, response.text
    elements = response.json()["pages"][0]["elements"]
    assert elements
    assert all("text" not in e for e in elements)
    assert _sent(dots)[0]["messages"][0]["content"][1]["text"] == PREFIX + _prompt("layout_only_en.txt")


def test_ocr_returns_markdown_with_the_ocr_prompt(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    response = httpx.post(
        docs_gateway.root_url + "/v1/ocr",
        json={"image": base64.b64encode(PAGE.read_bytes()).decode()},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert "dots.ocr's output format" in document["markdown"]
    assert "elements" not in document["pages"][0]
    assert _sent(dots)[0]["messages"][0]["content"][1]["text"] == PREFIX + _prompt("ocr.txt")


def test_ocr_of_a_region_sends_the_box_in_model_pixels(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    data_url = "data:image/jpeg;base64," + base64.b64encode(PAGE.read_bytes()).decode()
    response = httpx.post(
        docs_gateway.root_url + "/v1/ocr", json={"image": data_url, "bbox": [163, 241, 1536, 705]}, timeout=30
    )
    assert response.status_code == 200, response.text
    text = _sent(dots)[0]["messages"][0]["content"][1]["text"]
    # The page went out unscaled (padded), so its pixels are the model's: the box is sent as it came.
    assert text == PREFIX + _prompt("grounding_ocr.txt") + str([163, 241, 1536, 705])


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("markdown", "text/markdown"), ("csv", "text/csv"), ("png", "image/png")]
)
def test_other_formats(docs_gateway: GatewayServer, fmt: str, media_type: str) -> None:
    response = _upload(docs_gateway, "/v1/layout", format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    if fmt == "markdown":
        assert response.text.startswith("Simulated Journal")
    elif fmt == "csv":
        lines = response.text.splitlines()
        assert lines[0] == "page,index,category,x1,y1,x2,y2,text"
        assert lines[1].startswith("1,0,Page-header,")
    else:
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (1700, 2250)


def test_request_sampling_overrides_within_bounds(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    fields = {"temperature": "0.3", "top_p": "0.9", "max_completion_tokens": "100000"}
    assert _upload(docs_gateway, "/v1/layout", **fields).status_code == 200
    body = _sent(dots)[0]
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)
    assert body["max_completion_tokens"] == 24000  # the config's cap


def _answering(text: str) -> Callable[[dict[str, Any]], str]:
    return lambda request: text


def test_truncated_layout_is_repaired(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    full = dots_ocr_answer(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": _prompt("layout_all_en.txt")}]}]}
    )
    third = [m.start() for m in re.finditer(r'\{"bbox"', full)][2]
    cut = full[: third + 30]  # stops inside the third element
    truncated = make_standin(OCR_MODEL, responder=_answering(cut), max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [truncated.base_url]})
    document = _upload(gateway, "/v1/layout").json()
    page = document["pages"][0]
    assert document["status"] == page["status"] == "repaired"
    assert page["repairs"].get("truncated_tail") == 1
    assert len(page["elements"]) == 2


def test_invalid_output_is_retried_hotter_then_degraded(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    prose = make_standin(
        OCR_MODEL, responder=_answering("I am sorry, I cannot see any layout here."), max_model_len=32768
    )
    gateway = make_gateway({OCR_MODEL: [prose.base_url]})
    response = _upload(gateway, "/v1/layout")
    assert response.status_code == 200
    document = response.json()
    assert document["status"] == "degraded"
    assert document["pages"][0]["attempts"] == 3
    assert document["pages"][0]["elements"] == []
    assert "cannot see any layout" in document["markdown"]
    assert [b["temperature"] for b in _sent(prose)] == [0.1, 0.3, 0.5]
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_pages_total{model="dots-ocr",status="degraded",task="layout"} 1.0' in metrics


def _looping_then_clean(body: dict[str, Any]) -> str:
    """A page that loops on one table row at the first temperature, and answers properly when retried."""
    if body["temperature"] == 0.1:
        row = '{"bbox": [10, 10, 200, 40], "category": "Text", "text": "| 1 | 2 | 3 |"}, '
        return "[" + row * 200
    return dots_ocr_answer(body)


def test_a_loop_the_server_cuts_is_retried_and_counted(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    standin = make_standin(OCR_MODEL, responder=_looping_then_clean, max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [standin.base_url]})
    response = _upload(gateway, "/v1/layout")
    assert response.status_code == 200, response.text
    [page] = response.json()["pages"]
    assert (page["status"], page["attempts"]) == ("ok", 2)
    first, second = _sent(standin)
    # Every document request carries the config's setting, in vLLM's request shape.
    expected = {"max_pattern_size": 256, "min_pattern_size": 1, "min_count": 16}
    assert first["repetition_detection"] == second["repetition_detection"] == expected
    assert [first["temperature"], second["temperature"]] == [0.1, 0.3]
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_repetition_stops_total{model="dots-ocr",task="layout"} 1.0' in metrics


def test_a_page_that_loops_on_every_attempt_keeps_its_salvage(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    row = '{"bbox": [10, 10, 200, 40], "category": "Text", "text": "| 1 | 2 | 3 |"}, '
    standin = make_standin(OCR_MODEL, responder=_answering("[" + row * 200), max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [standin.base_url]})
    [page] = _upload(gateway, "/v1/layout").json()["pages"]
    assert page["attempts"] == 3
    assert page["finish_reason"] == "repetition"
    assert page["status"] == "repaired"  # the rows before the cut are a usable (deduplicated) answer
    assert len(page["elements"]) == 1
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_repetition_stops_total{model="dots-ocr",task="layout"} 3.0' in metrics


@pytest.mark.parametrize(
    ("path", "fields", "data", "status", "param"),
    [
        ("/v1/layout", {}, b"%PDF-1.7 not an image at all", 400, "file"),
        ("/v1/layout", {}, PAGE.read_bytes()[:5000], 400, "file"),  # truncated JPEG
        ("/v1/layout", {"mode": "poetry"}, b"", 400, "mode"),
        ("/v1/layout", {"format": "docx"}, b"", 400, "format"),
        ("/v1/layout", {"model": CHAT_MODEL}, b"", 404, "model"),  # not served by this gateway
        ("/v1/ocr", {"bbox": "10,10,5,5"}, b"", 400, "bbox"),
        ("/v1/ocr", {"bbox": "0,0,5000,100"}, b"", 400, "bbox"),
        ("/v1/ocr", {"format": "csv"}, b"", 400, "format"),
    ],
)
def test_bad_document_requests_are_4xx_naming_the_field(
    docs_gateway: GatewayServer, path: str, fields: dict[str, str], data: bytes, status: int, param: str
) -> None:
    response = _upload(docs_gateway, path, data, **fields)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]


def test_json_without_an_image_and_other_content_types_are_refused(docs_gateway: GatewayServer) -> None:
    missing = httpx.post(docs_gateway.root_url + "/v1/ocr", json={"model": OCR_MODEL}, timeout=10)
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "image"
    xml = httpx.post(
        docs_gateway.root_url + "/v1/ocr", content=b"<image/>", headers={"content-type": "text/xml"}, timeout=10
    )
    assert xml.status_code == 415


def test_a_model_without_the_task_is_refused(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer], dots: StandinServer
) -> None:
    chat = make_standin(CHAT_MODEL)
    gateway = make_gateway({OCR_MODEL: [dots.base_url], CHAT_MODEL: [chat.base_url]})
    response = _upload(gateway, "/v1/layout", model=CHAT_MODEL)
    assert response.status_code == 400
    assert "does not do layout" in response.json()["error"]["message"]
    assert orjson.loads(response.content)["error"]["param"] == "model"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.jpg")) + sorted(FIXTURES.glob("*.png")), ids=lambda p: p.name)
def test_every_fixture_page_goes_through(docs_gateway: GatewayServer, dots: StandinServer, path: Path) -> None:
    with Image.open(path) as original:
        size = original.size
    response = _upload(docs_gateway, "/v1/layout", path.read_bytes())
    assert response.status_code == 200, response.text
    page = response.json()["pages"][0]
    assert (page["width"], page["height"]) == size
    assert page["status"] == "ok"
    assert _sent_image_size(_sent(dots)[-1]) == _model_size(*size, DOTS_POLICY)


def test_picture_crops_are_embedded_when_asked(docs_gateway: GatewayServer) -> None:
    plain = _upload(docs_gateway, "/v1/layout").json()["markdown"]
    assert "![Picture](#bbox=" in plain
    cropped = _upload(docs_gateway, "/v1/layout", picture_crops="true").json()["markdown"]
    assert "![Picture](data:image/png;base64," in cropped


def test_a_decompression_bomb_is_refused_before_decoding(docs_gateway: GatewayServer, dots: StandinServer) -> None:
    # A 1-bit 20000 x 20000 PNG is tiny on the wire but 400 million pixels once decoded.
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")
    response = _upload(docs_gateway, "/v1/layout", buffer.getvalue())
    assert response.status_code == 413, response.text
    assert response.json()["error"]["param"] == "file"
    assert _sent(dots) == []


def test_ocr_with_another_model_uses_its_own_prompt_and_image_policy(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    qwen = make_standin(CHAT_MODEL, reply="# Page title\n\nSome text.")
    gateway = make_gateway({CHAT_MODEL: [qwen.base_url]})
    response = _upload(gateway, "/v1/ocr", model=CHAT_MODEL)
    assert response.status_code == 200, response.text
    assert response.json()["markdown"] == "# Page title\n\nSome text."
    [body] = _sent(qwen)
    prompt = (PROJECT_ROOT / "prompts" / CHAT_MODEL / "ocr.txt").read_text()
    assert body["messages"][0]["content"][1] == {"type": "text", "text": prompt}  # no dots.ocr prefix
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.7, 0.8, 2048)
    qwen3_policy = ImagePolicy(min_pixels=4096, max_pixels=4194304, factor=32)
    assert _sent_image_size(body) == _model_size(1700, 2250, qwen3_policy)


def test_without_dots_ocr_a_request_naming_no_model_goes_to_a_served_model_with_the_task(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    qwen = make_standin(CHAT_MODEL, reply="Some text.")
    gateway = make_gateway({CHAT_MODEL: [qwen.base_url]})
    response = _upload(gateway, "/v1/ocr")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == CHAT_MODEL
    layout = _upload(gateway, "/v1/layout")  # no served model has boxes: the default it names cannot do it
    assert layout.status_code == 404, layout.text


def test_pages_are_resized_to_the_cap_the_server_runs_with(
    make_gateway: Callable[..., GatewayServer], dots: StandinServer
) -> None:
    # A memory plan started vLLM with a 1 MP cap: sending the 11.3 MP-policy size would make vLLM resize
    # again and every box would come back in the wrong scale.
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, model_max_pixels={OCR_MODEL: 1_000_000})
    response = _upload(gateway, "/v1/layout")
    assert response.status_code == 200, response.text
    capped = ImagePolicy(min_pixels=3136, max_pixels=1_000_000, factor=28)
    height, width = smart_resize(2250, 1700, capped)
    assert _sent_image_size(_sent(dots)[0]) == (width, height)
    assert width * height <= 1_000_000
    title = response.json()["pages"][0]["elements"][1]["bbox"]
    assert title == pytest.approx([0.12 * 1700, 0.08 * 2250, 0.88 * 1700, 0.13 * 2250], abs=4)


def test_json_answers_say_they_are_json(docs_gateway: GatewayServer) -> None:
    response = _upload(docs_gateway, "/v1/layout")
    assert response.headers["content-type"] == "application/json"


def test_a_server_with_a_short_context_gets_what_fits_not_a_400_on_every_page(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # dots-ocr's config asks for 16,384 output tokens; a server started with --max-model-len 8192 would refuse
    # every page. The gateway asks for what the reported context leaves after the page and its prompt.
    short = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=8192)
    gateway = make_gateway({OCR_MODEL: [short.base_url]})
    gateway.wait_ready()
    assert gateway.state.models[OCR_MODEL].max_model_len == 8192
    response = _upload(gateway, "/v1/layout")
    assert response.status_code == 200, response.text
    assert response.json()["pages"][0]["status"] in ("ok", "repaired")
    [body] = _sent(short)
    width, height = _sent_image_size(body)
    image_tokens = (width // 28) * (height // 28)
    assert body["max_completion_tokens"] == 8192 - image_tokens - 512
