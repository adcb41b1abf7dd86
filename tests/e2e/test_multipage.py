"""PDFs, multi-page TIFFs and batches through /v1/ocr and /v1/layout, with the stand-in as dots.ocr."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 A3 pages with a text layer
NOTES = FIXTURES / "olmocr_mattsnotes.pdf"  # 3 handwritten pages
REFERENCE = FIXTURES / "olmocr_reference"


@pytest.fixture
def dots(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=0.2)


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer], dots: StandinServer) -> GatewayServer:
    return make_gateway({OCR_MODEL: [dots.base_url]}, max_batch_files=3)


def _post(gateway: GatewayServer, path: str, files: list[tuple[str, bytes]], **fields: str) -> httpx.Response:
    parts = [("file", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(gateway.root_url + path, files=parts, data=fields, timeout=60)


def _chat_requests(standin: StandinServer) -> list[Any]:
    return [r for r in standin.state.requests if r.path == "/v1/chat/completions"]


def test_every_page_of_a_pdf_in_page_order_at_200_dpi(gateway: GatewayServer, dots: StandinServer) -> None:
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())])
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["filename"] == "calendar.pdf"
    assert [p["page"] for p in document["pages"]] == [1, 2]
    for page in document["pages"]:
        assert (page["width"], page["height"], page["dpi"]) == (2339, 3308, 200)
        assert page["status"] == "ok"
    assert document["markdown"].count("# A Simulated Page") == 2
    # The wall clock and the sum over pages, each named for what it is; `upstream_ms` is the sum's old name.
    assert set(document["timings"]) == {"total_ms", "upstream_ms_sum", "upstream_ms"}
    assert document["timings"]["upstream_ms"] == document["timings"]["upstream_ms_sum"]
    requests = _chat_requests(dots)
    assert len(requests) == 2
    # Both pages were in flight together (each takes 0.2 s in the stand-in), not one after the other.
    assert requests[1].received_at < requests[0].finished_at


def test_page_selection_reads_only_those_pages(gateway: GatewayServer, dots: StandinServer) -> None:
    response = _post(gateway, "/v1/ocr", [("notes.pdf", NOTES.read_bytes())], pages="2-3")
    assert response.status_code == 200, response.text
    assert [p["page"] for p in response.json()["pages"]] == [2, 3]
    assert len(_chat_requests(dots)) == 2


def test_the_dpi_is_capped_so_no_side_passes_4500_px(gateway: GatewayServer) -> None:
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())], pages="1", dpi="600")
    assert response.status_code == 200, response.text
    page = response.json()["pages"][0]
    # A3 is 1190.7 pt high: 4500 px allows at most 272 dpi (1190.7 / 72 x 272 = 4498 px).
    assert page["dpi"] == 272
    assert max(page["width"], page["height"]) <= 4500


def test_a_failing_page_gives_a_partial_result(gateway: GatewayServer, dots: StandinServer) -> None:
    dots.state.faults.fail_next = 1
    dots.state.faults.fail_status = 400  # not retried: the page fails
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())])
    assert response.status_code == 200, response.text
    document = response.json()
    statuses = sorted(p["status"] for p in document["pages"])
    assert statuses == ["failed", "ok"]
    failed = next(p for p in document["pages"] if p["status"] == "failed")
    assert failed["error"]["message"]
    assert document["status"] == "failed"
    assert document["markdown"].count("# A Simulated Page") == 1


def test_a_degraded_born_digital_page_falls_back_to_its_text_layer(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    prose = make_standin(OCR_MODEL, reply="I cannot read this page.", max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [prose.base_url]})
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())], pages="1")
    assert response.status_code == 200, response.text
    page = response.json()["pages"][0]
    assert page["status"] == "degraded"
    assert page["fallback"] == "pdf_text"
    assert page["attempts"] == 3
    assert "cannot read" not in page["markdown"]
    assert len(page["markdown"]) > 100  # the calendar's own text
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_page_fallbacks_total{kind="pdf_text",model="dots-ocr"} 1.0' in metrics


def test_a_multi_page_tiff_is_read_page_by_page(gateway: GatewayServer, dots: StandinServer) -> None:
    frames = [Image.new("RGB", (600, 800), colour) for colour in ("white", "lightgrey", "white")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    response = _post(gateway, "/v1/layout", [("scan.tiff", buffer.getvalue())], pages="1,3")
    assert response.status_code == 200, response.text
    assert [p["page"] for p in response.json()["pages"]] == [1, 3]


def test_a_batch_answers_one_document_per_file_in_order(gateway: GatewayServer) -> None:
    page = (FIXTURES / "dotsocr_demo_image2.png").read_bytes()
    files = [("a.png", page), ("broken.pdf", b"%PDF-1.7 this is not a PDF"), ("calendar.pdf", CALENDAR.read_bytes())]
    response = _post(gateway, "/v1/ocr", files, pages="1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    names = [d["filename"] for d in body["data"]]
    assert names == ["a.png", "broken.pdf", "calendar.pdf"]
    assert [d["status"] for d in body["data"]] == ["ok", "failed", "ok"]
    assert body["data"][1]["error"]["param"] == "file"


def test_a_batch_over_the_limit_is_refused(gateway: GatewayServer) -> None:
    page = (FIXTURES / "dotsocr_demo_image2.png").read_bytes()
    response = _post(gateway, "/v1/ocr", [(f"{i}.png", page) for i in range(4)])
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    ("data", "fields", "status", "param"),
    [
        (CALENDAR.read_bytes(), {"pages": "3"}, 400, "pages"),
        (CALENDAR.read_bytes(), {"pages": "2-1"}, 400, "pages"),
        (CALENDAR.read_bytes()[:20_000], {}, 400, "file"),
        (CALENDAR.read_bytes(), {"dpi": "5000"}, 400, "dpi"),
    ],
)
def test_bad_documents_are_4xx_naming_the_field(
    gateway: GatewayServer, data: bytes, fields: dict[str, str], status: int, param: str
) -> None:
    response = _post(gateway, "/v1/layout", [("x.pdf", data)], **fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_the_text_survives_the_gateway(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # The stand-in answers with olmOCR's real output for the page. Every olmOCR-Bench fact that holds in that
    # answer must still hold in what the gateway returns (the ones it gets wrong, e.g. the letter's date, are
    # the model's errors, not the gateway's).
    answer = (REFERENCE / "lincoln_letter_pg1_repeat1.md").read_text()
    olm = make_standin(OCR_MODEL, reply=answer, max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [olm.base_url]})
    response = _post(gateway, "/v1/ocr", [("letter.pdf", (FIXTURES / "olmocr_lincoln_letter.pdf").read_bytes())])
    assert response.status_code == 200, response.text
    markdown = response.json()["markdown"]
    facts = [json.loads(line) for line in (REFERENCE / "facts.jsonl").read_text().splitlines() if line.strip()]
    present = [f["text"] for f in facts if f["pdf"] == "lincoln_letter.pdf" and f["type"] == "present"]
    held_by_the_model = [text for text in present if text in answer]
    assert len(held_by_the_model) >= 2
    for text in held_by_the_model:
        assert text in markdown


def test_pdf_pages_drawn_at_the_model_size_keep_exact_boxes(gateway: GatewayServer, dots: StandinServer) -> None:
    # PDF pages are drawn by PDFium straight at the model-input size; boxes must still map to the page's
    # pixels at its DPI.
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())], pages="1")
    page = response.json()["pages"][0]
    title = page["elements"][1]["bbox"]
    assert title == pytest.approx([0.12 * 2339, 0.08 * 3308, 0.88 * 2339, 0.13 * 3308], abs=3)
    sent = _chat_requests(dots)[0].body["messages"][0]["content"][0]["image_url"]["url"]
    with Image.open(io.BytesIO(base64.b64decode(sent.partition(",")[2]))) as image:
        assert image.size == (2352, 3304)  # smart_resize of 2339 x 3308 (dots.ocr's documented example)


def test_an_overlay_of_a_pdf_page_is_drawn_at_the_pages_own_size(gateway: GatewayServer) -> None:
    response = _post(gateway, "/v1/layout", [("calendar.pdf", CALENDAR.read_bytes())], format="png", pages="2")
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (2339, 3308)
