"""The UI's pieces without a browser or a server: the gateway client's reading of answers and errors, the
overlay drawing, page selection and rendering, and the tables the tabs show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.ui.conftest import CALENDAR, PAGE
from vlm_ui import document_view as view
from vlm_ui.gateway_client import DocumentOptions, GatewayClient, GatewayError
from vlm_ui.overlay import category_colour, draw_page
from vlm_ui.pages import page_count, page_image, selected_pages
from vlm_ui.session_jobs import job_rows, remember_job
from vlm_ui.tabs.models import model_rows


def _client(handler: Any, api_key: str | None = None) -> GatewayClient:
    return GatewayClient("http://gateway.test/v1", api_key, transport=httpx.MockTransport(handler))


def test_an_openai_error_becomes_one_readable_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "message": "The model `x` does not exist.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        }
        return httpx.Response(404, json=body)

    with pytest.raises(GatewayError) as caught:
        _client(handler).models()
    error = caught.value
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert error.readable() == "Gateway error 404 model_not_found: The model `x` does not exist. (field `model`)"


def test_a_non_json_error_page_still_reads() -> None:
    with pytest.raises(GatewayError, match="Gateway error 502 error: <html>bad gateway</html>"):
        _client(lambda request: httpx.Response(502, text="<html>bad gateway</html>")).models()


def test_the_api_key_goes_in_the_authorization_header_and_v1_is_accepted() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": []})

    _client(handler, api_key="sesame").models()
    [request] = seen
    assert request.headers["authorization"] == "Bearer sesame"
    assert str(request.url) == "http://gateway.test/v1/models?verbose=true"  # not /v1/v1/models


def test_no_key_sends_no_authorization_header() -> None:
    seen: list[httpx.Request] = []
    _client(lambda r: seen.append(r) or httpx.Response(200, json={"data": []})).models()
    assert "authorization" not in seen[0].headers


def test_a_gateway_that_refuses_connections_is_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(GatewayError, match=r"Cannot reach the gateway at http://gateway.test: connection refused") as e:
        _client(handler).models()
    assert e.value.status == 0


@pytest.mark.parametrize(("status", "listed"), [(404, None), (405, None)])
def test_no_job_listing_on_the_gateway_is_none_not_an_error(status: int, listed: None) -> None:
    body = {"error": {"message": "Method Not Allowed", "type": "invalid_request_error"}}
    assert _client(lambda r: httpx.Response(status, json=body)).list_jobs() is listed


def test_a_job_listing_is_read_in_either_shape() -> None:
    jobs = [{"id": "job-1", "status": "running"}]
    assert _client(lambda r: httpx.Response(200, json={"object": "list", "data": jobs})).list_jobs() == jobs
    assert _client(lambda r: httpx.Response(200, json=jobs)).list_jobs() == jobs


def test_a_server_error_on_the_job_listing_is_still_an_error() -> None:
    with pytest.raises(GatewayError, match="500"):
        _client(lambda r: httpx.Response(500, json={"error": {"message": "boom"}})).list_jobs()


def test_document_fields_are_sent_as_the_gateway_names_them() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "document.ocr", "pages": []})

    options = DocumentOptions(model="dots-ocr", bbox="1,2,3,4", pages="1-2", dpi=150)
    _client(handler).document("ocr", PAGE, options)
    body = seen[0].read()
    assert seen[0].url.path == "/v1/ocr"
    for name, value in {"model": "dots-ocr", "bbox": "1,2,3,4", "pages": "1-2", "dpi": "150"}.items():
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body
    assert b'filename="dotsocr_demo_image1.jpg"' in body
    assert b"Content-Type: image/jpeg" in body
    assert b'name="mode"' not in body  # unset fields are left to the gateway's defaults


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n".encode() for e in events)


def test_a_stream_gives_its_deltas_and_usage() -> None:
    chunks = _sse(
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        "[DONE]",
    )
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=chunks, headers={"content-type": "text/event-stream"})

    deltas = list(_client(handler).chat_stream({"model": "m", "messages": []}))
    assert "".join(d.text for d in deltas) == "Hello"
    assert deltas[-1].usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert any(d.finish_reason == "stop" for d in deltas)
    assert seen[0]["stream"] is True
    assert seen[0]["stream_options"] == {"include_usage": True}


def test_an_error_event_in_a_stream_raises_with_its_message() -> None:
    chunks = _sse(
        {"choices": [{"delta": {"content": "partial"}}]},
        {"error": {"message": "upstream went away", "type": "bad_gateway", "code": 502}},
        "[DONE]",
    )
    stream = _client(lambda r: httpx.Response(200, content=chunks)).chat_stream({"model": "m"})
    assert next(stream).text == "partial"
    with pytest.raises(GatewayError, match="upstream went away") as caught:
        next(stream)
    assert caught.value.status == 502


def test_boxes_are_drawn_in_their_category_colour_scaled_to_the_image() -> None:
    image = Image.new("RGB", (100, 200), "white")  # shown at half the page's size
    page = {
        "width": 200,
        "height": 400,
        "elements": [
            {"index": 0, "category": "Title", "bbox": [20, 100, 180, 300]},
            {"index": 1, "category": "Table", "bbox": [0, 0, 10, 10]},
        ],
    }
    drawn = draw_page(image, page)
    assert drawn.size == (100, 200)
    assert image.getpixel((50, 100)) == (255, 255, 255)  # the input is left alone
    red = drawn.getpixel((50, 100))  # the Title's middle, at half scale: tinted red
    assert red[0] > 240
    assert red[1] < 220
    assert red[2] < 220
    assert drawn.getpixel((5, 190)) == (255, 255, 255)  # outside every box
    outline = drawn.getpixel((10, 100))  # the Title's left edge (x=20 on the page, 10 shown)
    assert outline[:3] == category_colour("Title")


def test_the_selected_box_is_drawn_stronger() -> None:
    image = Image.new("RGB", (200, 200), "white")
    page = {"width": 200, "height": 200, "elements": [{"index": 0, "category": "Text", "bbox": [50, 50, 150, 150]}]}
    plain = draw_page(image, page).getpixel((100, 100))
    chosen = draw_page(image, page, selected=0).getpixel((100, 100))
    assert sum(chosen) < sum(plain)  # a deeper tint


def test_a_region_is_outlined() -> None:
    image = Image.new("RGB", (200, 200), "white")
    drawn = draw_page(image, {"width": 200, "height": 200}, region=[50, 50, 150, 150])
    assert drawn.getpixel((50, 100)) != (255, 255, 255)
    assert drawn.getpixel((100, 100)) == (255, 255, 255)  # outlined, not filled


@pytest.mark.parametrize(
    ("spec", "total", "pages"),
    [("", 3, [1, 2, 3]), ("2", 3, [2]), ("1-2, 7", 9, [1, 2, 7]), ("2-9", 4, [2, 3, 4]), ("x", 2, [1, 2])],
)
def test_page_selection(spec: str, total: int, pages: list[int]) -> None:
    assert selected_pages(spec, total) == pages


def test_pages_of_a_pdf_and_an_image(tmp_path: Path) -> None:
    assert page_count(CALENDAR) == 2
    assert page_count(PAGE) == 1
    second = page_image(CALENDAR, 2)
    assert second is not None
    assert second.height > second.width
    frames = [Image.new("RGB", (30, 40), colour) for colour in ("red", "blue")]
    tiff = tmp_path / "two.tiff"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    assert page_count(tiff) == 2
    shown = page_image(tiff, 2)
    assert shown is not None
    assert shown.getpixel((1, 1)) == (0, 0, 255)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"nope")
    assert page_count(junk) == 1  # the gateway is the one that refuses it, in its words
    assert page_image(junk, 1) is None


DOCUMENT: dict[str, Any] = {
    "model": "dots-ocr",
    "status": "repaired",
    "timings": {"prepare_ms": 41.2, "upstream_ms": 2310.5, "total_ms": 2360.8},
    "usage": {"prompt_tokens": 4911, "completion_tokens": 812},
    "pages": [
        {
            "page": 1,
            "width": 10,
            "height": 10,
            "status": "ok",
            "attempts": 1,
            "finish_reason": "stop",
            "elements": [{"index": 0, "category": "Title", "bbox": [1, 1, 9, 3], "text": "# Hi, there"}],
        },
        {
            "page": 2,
            "width": 10,
            "height": 10,
            "status": "repaired",
            "attempts": 2,
            "finish_reason": "length",
            "repairs": {"truncated_tail": 1},
            "dropped_elements": {"invalid_bbox": 2},
            "elements": [{"index": 0, "category": "Picture", "bbox": [0, 0, 5, 5]}],
        },
        {"page": 3, "status": "failed", "error": {"message": "upstream timed out"}},
    ],
}


def test_per_page_status_says_what_was_repaired() -> None:
    rows = view.status_rows(DOCUMENT)
    assert [row[:2] for row in rows] == [[1, "ok"], [2, "repaired"], [3, "failed"]]
    assert rows[1][4] == "repaired: truncated_tail x1; dropped: invalid_bbox x2"
    assert rows[2][4] == "error: upstream timed out"


def test_the_summary_has_status_timings_and_tokens() -> None:
    summary = view.summary_markdown(DOCUMENT)
    assert "**repaired** — 3 page(s): 1 ok, 1 repaired, 1 failed" in summary
    assert "upstream 2,310 ms" in summary or "upstream 2,311 ms" in summary
    assert "tokens: 4,911 in, 812 out" in summary


def test_the_csv_has_the_gateways_columns_and_quotes_text() -> None:
    lines = view.document_csv(DOCUMENT).splitlines()
    assert lines == [
        "page,index,category,x1,y1,x2,y2,text",
        '1,0,Title,1,1,9,3,"# Hi, there"',
        "2,0,Picture,0,0,5,5,",
    ]


def test_bbox_parsing() -> None:
    assert view.parse_bbox("163, 241,1536 , 705") == [163, 241, 1536, 705]
    assert view.parse_bbox("1 2 3 4") == [1, 2, 3, 4]
    assert view.parse_bbox("1,2,3") is None
    assert view.parse_bbox("a,b,c,d") is None


def test_remembered_jobs_update_in_place_newest_first() -> None:
    jobs: list[dict[str, Any]] = []
    remember_job(jobs, {"id": "job-1", "status": "queued", "task": "ocr"}, filename="a.pdf")
    remember_job(jobs, {"id": "job-2", "status": "queued", "task": "layout"}, filename="b.pdf")
    remember_job(
        jobs,
        {
            "id": "job-1",
            "status": "failed",
            "progress": {"pages_done": 1, "pages_total": 3},
            "error": {"message": "upstream timed out"},
        },
    )
    assert [job["id"] for job in jobs] == ["job-2", "job-1"]
    assert job_rows(jobs)[1] == ["job-1", "a.pdf", "ocr", None, "failed", "1/3", "upstream timed out"]


def test_model_rows_join_the_served_list_and_the_catalogue() -> None:
    listing = {
        "data": [{"id": "b", "status": "unavailable", "tasks": ["chat"], "max_model_len": 8192}],
        "catalog": [
            {
                "name": "a",
                "engine": None,
                "tasks": ["ocr"],
                "fits_12gb": False,
                "fits_16gb": False,
                "unsupported_reason": "no vLLM implementation",
                "licence": "Apache-2.0",
            },
            {
                "name": "b",
                "engine": "vllm",
                "tasks": ["chat"],
                "parameters_b": 2.1,
                "weights_gib": 4.0,
                "fits_12gb": True,
                "settings_12gb": {"max_model_len": 16384, "max_num_seqs": 8},
                "fits_16gb": True,
            },
        ],
    }
    rows = model_rows(listing)
    assert [row[:3] for row in rows] == [["b", "unavailable", "chat"], ["a", "not servable", "ocr"]]
    assert rows[0][5] == "yes (16,384 tokens x 8)"
    assert rows[0][7] == "8,192"
    assert (rows[0][8], rows[1][8]) == ("vllm", "none")
    assert rows[1][9] == "Apache-2.0"
    assert rows[1][10] == "no vLLM implementation"
