"""Mistral's OCR API on /v1/ocr, driven by the official `mistralai` SDK, with stand-ins for dots.ocr and the
model that fills annotation schemas (vLLM's structured outputs, simulated faithfully by the stand-in)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mistralai.client import Mistral
from PIL import Image

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.running_gateway import GatewayServer

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image1.jpg"  # 1700 x 2250
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 pages
DOCX_URL = "data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,UEsDBA=="
INVOICE = json.loads((ROOT / "examples" / "invoice.schema.json").read_text())
PICTURE = json.loads((ROOT / "examples" / "picture.schema.json").read_text())


def _data_url(path: Path, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
def standins(make_standin: Callable[..., StandinServer]) -> tuple[StandinServer, StandinServer]:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)
    return dots, make_standin(CHAT_MODEL, max_model_len=16384)


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer], standins: tuple[StandinServer, StandinServer]) -> GatewayServer:
    dots, qwen = standins
    return make_gateway({OCR_MODEL: [dots.base_url], CHAT_MODEL: [qwen.base_url]})


def _client(gateway: GatewayServer) -> Mistral:
    return Mistral(api_key="unused", server_url=gateway.root_url)


def _extractions(standin: StandinServer) -> list[dict[str, Any]]:
    return [r.body for r in standin.state.requests if r.body is not None and "response_format" in r.body]


def test_a_pdf_page_with_images_and_both_annotations(
    gateway: GatewayServer, standins: tuple[StandinServer, StandinServer]
) -> None:
    with _client(gateway) as client:
        answer = client.ocr.process(
            model="mistral-ocr-latest",
            document={"type": "document_url", "document_url": _data_url(CALENDAR, "application/pdf")},
            pages=[1],
            include_image_base64=True,
            bbox_annotation_format=PICTURE,
            document_annotation_format=INVOICE,
            extract_header=True,
            table_format="html",
        )
    assert answer.model == OCR_MODEL  # the alias names the default OCR model; the answer names what read it
    [page] = answer.pages
    assert page.index == 1
    assert page.dimensions is not None
    assert page.dimensions.dpi == 200
    assert page.header == "Simulated Journal, Vol. 1"
    assert "Simulated Journal" not in page.markdown
    [image] = page.images
    assert image.id == "img-0.png"
    assert f"![{image.id}]({image.id})" in page.markdown
    assert image.image_base64 is not None
    with Image.open(io.BytesIO(base64.b64decode(image.image_base64.partition(",")[2]))) as crop:
        assert crop.size == (image.bottom_right_x - image.top_left_x, image.bottom_right_y - image.top_left_y)
    assert image.image_annotation is not None
    assert set(json.loads(image.image_annotation)) == {"kind", "description"}
    [table] = page.tables or []
    assert (table.id, table.format_) == ("tbl-0.html", "html")
    assert table.content.startswith("<table")
    assert answer.usage_info.pages_processed == 1
    assert answer.usage_info.doc_size_bytes == CALENDAR.stat().st_size
    assert answer.document_annotation is not None
    invoice = json.loads(answer.document_annotation)
    assert set(INVOICE["json_schema"]["schema"]["required"]) <= set(invoice)

    # What the extractor was asked: vLLM's structured outputs, with bounded output, one image per prompt.
    dots, qwen = standins
    sent = _extractions(qwen)
    assert len(sent) == 2
    document_request = next(body for body in sent if body["response_format"]["json_schema"]["name"] == "invoice")
    assert document_request["response_format"]["json_schema"]["schema"] == INVOICE["json_schema"]["schema"]
    assert document_request["max_completion_tokens"] == 1024
    parts = document_request["messages"][1]["content"]
    assert [part["type"] for part in parts] == ["image_url", "text"]
    assert "A Simulated Page" in parts[1]["text"]  # the OCR text is in the prompt
    assert not _extractions(dots)


def test_an_image_document_and_the_gateways_page_facts(gateway: GatewayServer) -> None:
    with _client(gateway) as client:
        answer = client.ocr.process(
            model=OCR_MODEL, document={"type": "image_url", "image_url": _data_url(PAGE, "image/jpeg")}
        )
    [page] = answer.pages
    assert page.index == 0
    assert page.dimensions is not None
    assert (page.dimensions.width, page.dimensions.height) == (1700, 2250)
    assert not page.images[0].image_base64  # not asked for (the SDK leaves it unset)
    assert "<table" not in page.markdown  # tables inline, as Markdown, without table_format
    assert "| " in page.markdown
    assert answer.document_annotation is None
    # The gateway's own facts ride beside Mistral's fields (the SDK keeps them as extra attributes or drops them).
    raw = httpx.post(
        gateway.root_url + "/v1/ocr",
        json={
            "model": OCR_MODEL,
            "document": {"type": "image_url", "image_url": {"url": _data_url(PAGE, "image/jpeg")}},
        },
        timeout=30,
    ).json()
    [raw_page] = raw["pages"]
    assert raw_page["status"] == "ok"
    assert raw_page["elements"][1]["category"] == "Title"
    assert len(raw_page["elements"][1]["bbox"]) == 4


def test_an_annotation_that_cannot_validate_says_why(
    make_gateway: Callable[..., GatewayServer], standins: tuple[StandinServer, StandinServer]
) -> None:
    dots, qwen = standins
    # 16 tokens cannot hold an invoice: vLLM stops at the limit mid-object, twice; no value is made up.
    gateway = make_gateway({OCR_MODEL: [dots.base_url], CHAT_MODEL: [qwen.base_url]}, annotation_max_tokens=16)
    body = {
        "model": OCR_MODEL,
        "document": {"type": "image_url", "image_url": _data_url(PAGE, "image/jpeg")},
        "document_annotation_format": INVOICE,
        "annotation_model": CHAT_MODEL,
    }
    answer = httpx.post(gateway.root_url + "/v1/ocr", json=body, timeout=30).json()
    assert answer["document_annotation"] is None
    error = answer["document_annotation_error"]
    assert (error["code"], error["attempts"]) == ("annotation_truncated", 2)
    assert len(_extractions(qwen)) == 2


def test_a_mistral_job_answers_in_mistrals_shape(gateway: GatewayServer) -> None:
    body = {
        "model": "mistral-ocr-latest",
        "document": {"type": "document_url", "document_url": _data_url(CALENDAR, "application/pdf")},
        "pages": "0-1",
        "document_annotation_format": INVOICE,
    }
    job = httpx.post(gateway.root_url + "/v1/jobs", json=body, timeout=30)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    for _ in range(400):
        status = httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}").json()
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert status["status"] == "succeeded", status
    result = httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result").json()
    assert [page["index"] for page in result["pages"]] == [0, 1]
    assert json.loads(result["document_annotation"])["line_items"] == []


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        (
            {
                "document_annotation_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "banana"}},
                }
            },
            "document_annotation_format.json_schema.schema",
        ),
        (
            {
                "document_annotation_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {
                            "type": "object",
                            "properties": {
                                f"field_{i:06d}": {"type": "string", "description": "x" * 20} for i in range(20_000)
                            },
                        },
                    },
                }
            },
            "document_annotation_format.json_schema.schema",
        ),
        ({"bbox_annotation_format": {"type": "json_object"}}, "bbox_annotation_format.type"),
        (
            {
                "bbox_annotation_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"$ref": "https://example.com/s.json"}},
                }
            },
            "bbox_annotation_format.json_schema.schema",
        ),
        ({"document_annotation_prompt": "only a prompt"}, "document_annotation_prompt"),
        (
            {
                "document": {
                    "type": "document_url",
                    "document_url": DOCX_URL,
                }
            },
            "document.document_url",
        ),
        ({"document": {"type": "file", "file_id": "f-1"}}, "document.type"),
        ({"document": "data:application/pdf;base64,JVBERi0="}, "document"),
        ({"pages": "one"}, "pages"),
        ({"pages": [-1]}, "pages"),
        ({"include_image_base64": "yes"}, "include_image_base64"),
        ({"image_limit": "3"}, "image_limit"),
        ({"table_format": "latex"}, "table_format"),
        ({"confidence_scores_granularity": "word"}, "confidence_scores_granularity"),
        ({"surprise": 1}, "surprise"),
        ({"model": "mistral-ocr-2512"}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(gateway: GatewayServer, patch: dict[str, Any], param: str) -> None:
    body = {"model": OCR_MODEL, "document": {"type": "image_url", "image_url": _data_url(PAGE, "image/jpeg")}, **patch}
    response = httpx.post(
        gateway.root_url + "/v1/ocr",
        content=orjson.dumps(body),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["param"] == param
