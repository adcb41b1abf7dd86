"""The simulated dots-ocr reads a PDF it was given from its own text layer, through the real gateway over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_responder
from launchers.vllm_standin.known_pages import load_known_pages
from tests.conftest import OCR_MODEL
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "documents"
EARNINGS = FIXTURES / "olmocr_earnings.pdf"  # born-digital: NVIDIA's notes, with a text layer
NOTES = FIXTURES / "olmocr_mattsnotes.pdf"  # three similar-looking pages, each with its own text


@pytest.fixture
def gateway(make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]) -> GatewayServer:
    responder = dots_ocr_responder(known_pages=load_known_pages([EARNINGS, NOTES]))
    dots = make_standin(OCR_MODEL, responder=responder, max_model_len=32768)
    return make_gateway({OCR_MODEL: [dots.base_url]}, cache_max_bytes=0)


def _post(gateway: GatewayServer, path: str, document: Path, **fields: str) -> httpx.Response:
    with document.open("rb") as file:
        return httpx.post(gateway.base_url + path, files={"file": file}, data=fields, timeout=30)


def test_ocr_of_a_known_pdf_is_its_text_layer_labelled_simulated(gateway: GatewayServer) -> None:
    markdown = _post(gateway, "/ocr", EARNINGS, format="markdown").text
    assert markdown.startswith(
        "[SIMULATED dots-ocr: no model ran; this is the text layer of olmocr_earnings.pdf page 1]"
    )
    assert "NVIDIA Corporation and Subsidiaries" in markdown
    assert "Recently Issued Accounting Pronouncements" in markdown


def test_each_page_is_told_apart_from_similar_ones(gateway: GatewayServer) -> None:
    pages = _post(gateway, "/ocr", NOTES).json()["pages"]
    for number, page in enumerate(pages, start=1):
        assert f"olmocr_mattsnotes.pdf page {number}]" in page["markdown"]


def test_layout_boxes_are_the_lines_of_the_page(gateway: GatewayServer) -> None:
    answer = _post(gateway, "/layout", EARNINGS).json()
    page = answer["pages"][0]
    assert page["status"] == "ok"
    header, *lines = page["elements"]
    assert header["category"] == "Page-header"
    assert "SIMULATED" in header["text"]
    assert "SIMULATED" not in page["markdown_no_headers"]
    title = next(element for element in lines if element["text"] == "NVIDIA Corporation and Subsidiaries")
    # US Letter at 200 dpi is 1700 x 2200 px; the line sits a little above 14 % of the page's height, centred.
    x1, y1, x2, y2 = title["bbox"]
    assert (page["width"], page["height"]) == (1700, 2200)
    assert 0.13 < y1 / 2200 < y2 / 2200 < 0.16
    assert x1 < 850 < x2


def test_grounding_reads_the_lines_inside_the_box(gateway: GatewayServer) -> None:
    # The box around "NVIDIA Corporation and Subsidiaries", in the page's pixels at 200 dpi.
    answer = _post(gateway, "/ocr", EARNINGS, bbox="600,300,1100,330").json()
    assert answer["pages"][0]["markdown"].strip() == "NVIDIA Corporation and Subsidiaries"


def test_a_page_it_was_not_given_gets_the_simulated_template(gateway: GatewayServer) -> None:
    markdown = _post(gateway, "/ocr", FIXTURES / "dotsocr_demo_image1.jpg", format="markdown").text
    assert "A Simulated Page" in markdown
