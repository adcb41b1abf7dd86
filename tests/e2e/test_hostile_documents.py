"""Hostile documents cannot starve other clients: a PDF whose pages take minutes to draw, or images that decode
to hundreds of MB, through the real HTTP path with the stand-in as dots.ocr."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway.documents.sources.render_pool import render_workers
from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.pdfs import plain_pdf, stroke_bomb_pdf
from tests.running_gateway import GatewayServer


@pytest.fixture
def dots(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)


def _ocr(gateway: GatewayServer, data: bytes, timeout: float, headers: dict[str, str] | None = None) -> httpx.Response:
    files = {"file": ("doc.pdf", data, "application/pdf")}
    return httpx.post(gateway.root_url + "/v1/ocr", files=files, headers=headers, timeout=timeout)


def test_a_pdf_cut_off_by_its_deadline_stops_drawing_and_other_pdfs_are_answered(
    make_gateway: Callable[..., GatewayServer], dots: StandinServer
) -> None:
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})
    bomb = stroke_bomb_pdf(lines=200_000)  # ~24 KB; PDFium draws its page for about a minute here
    workers = render_workers()
    # One hostile PDF per render worker, each cut off by a 1 s deadline of its own.
    with ThreadPoolExecutor(workers) as pool:
        cut_off = list(pool.map(lambda _: _ocr(gateway, bomb, 30, {"X-Request-Timeout": "1"}), range(workers)))
    assert [response.status_code for response in cut_off] == [504] * workers
    # Another client's one-page PDF: answered, not queued behind the drawings nobody waits for any more.
    try:
        response = _ocr(gateway, plain_pdf(), timeout=20)
    except httpx.ReadTimeout:
        raise AssertionError("a one-page PDF got no answer while abandoned renders held the workers") from None
    assert response.status_code == 200, response.text


def test_a_page_over_the_render_budget_is_refused_naming_the_setting(
    make_gateway: Callable[..., GatewayServer], dots: StandinServer
) -> None:
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, render_timeout_s=1)
    response = _ocr(gateway, stroke_bomb_pdf(lines=200_000), timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "file"
    assert "GATEWAY_RENDER_TIMEOUT_S" in error["message"]
    assert _ocr(gateway, plain_pdf(), timeout=20).status_code == 200
