"""The UI's endpoints called through gradio_client against the running UI, in front of a real gateway and
vLLM stand-ins: what a person gets from each tab, and the gateway's errors as readable messages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from launchers.vllm_standin import StandinConfig, StandinServer
from tests.conftest import CHAT_MODEL, OCR_MODEL, gateway_settings
from tests.ports import free_port
from tests.running_gateway import GatewayServer
from tests.ui.conftest import CALENDAR, CHAT_REPLY, PAGE, Stack
from tests.ui.running_ui import UIServer


@pytest.fixture
def client(stack: Stack) -> Client:
    """A fresh browser session each test: session state (the Jobs tab's list) starts empty."""
    return Client(stack.ui.url, verbose=False)


def _run_document(client: Client, path: Path | None, **fields: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "file_path": handle_file(str(path)) if path else None,
        "sample_label": None,
        "task_label": "Layout",
        "model_name": OCR_MODEL,
        "region": "",
        "page_spec": "",
        "dots": 200,
        "force_job": False,
    }
    values.update(fields)
    return tuple(client.predict(**values, api_name="/run_document"))


def test_layout_of_a_page_gives_boxes_markdown_and_downloads(client: Client) -> None:
    summary, status, downloads, _page, legend, overlay, markdown, elements, _text = _run_document(client, PAGE)
    assert "**ok**" in summary
    assert f"`{OCR_MODEL}`" in summary
    assert "tokens:" in summary
    assert status["data"][0][:2] == [1, "ok"]
    assert "# A Simulated Page" in markdown
    rows = elements["data"]
    assert [row[2] for row in rows[:3]] == ["Page-header", "Title", "Text"]
    assert [row[1] for row in rows] == list(range(len(rows)))  # reading order, numbered from 0
    names = sorted(Path(f).name for f in downloads)
    stem = "dotsocr_demo_image1"
    assert names == sorted([f"{stem}.json", f"{stem}.md", f"{stem}.csv", f"{stem}-page1-boxes.png"])
    document = json.loads(Path(next(f for f in downloads if f.endswith(".json"))).read_text())
    assert document["object"] == "document.layout"
    assert document["pages"][0]["width"] == 1700
    csv_lines = Path(next(f for f in downloads if f.endswith(".csv"))).read_text().splitlines()
    assert csv_lines[0] == "page,index,category,x1,y1,x2,y2,text"
    assert len(csv_lines) == len(rows) + 1
    assert "Title" in legend
    assert Path(overlay).is_file()


def test_a_bundled_sample_can_be_read_without_uploading(client: Client) -> None:
    summary, *_ = _run_document(client, None, sample_label="Page with a tricky reading order (PNG)")
    assert "**ok**" in summary


def test_ocr_gives_markdown_and_no_element_table(client: Client) -> None:
    summary, _status, downloads, *_rest, markdown, elements, _text = _run_document(client, PAGE, task_label="OCR")
    assert "**ok**" in summary
    assert markdown.strip()
    assert elements["data"] == []  # OCR answers text, not boxes
    assert not any(f.endswith(".csv") for f in downloads)


def test_region_ocr_needs_a_box_and_says_so(client: Client, stack: Stack) -> None:
    sent = len(stack.dots.state.requests)
    summary, *_ = _run_document(client, PAGE, task_label="Region OCR", region="12,oops")
    assert "Region OCR needs a box" in summary
    assert len(stack.dots.state.requests) == sent  # nothing went to the model


def test_region_ocr_sends_the_box(client: Client, stack: Stack) -> None:
    summary, *_ = _run_document(client, PAGE, task_label="Region OCR", region="163, 241, 1536, 705")
    assert "**ok**" in summary
    body = stack.dots.state.requests[-1].body
    assert body is not None
    prompt = body["messages"][0]["content"][1]["text"]
    # dots.ocr's grounding prompt ends with the box, in model-input pixels (the page is resized to 1708x2240).
    assert re.search(r"\[(\d+), (\d+), (\d+), (\d+)\]$", prompt), prompt


def test_a_long_document_goes_through_a_job_the_jobs_tab_lists(client: Client) -> None:
    # The stack's UI sends anything over one page through /v1/jobs; the calendar PDF has two.
    summary, status, downloads, *_ = _run_document(client, CALENDAR)
    assert [row[0] for row in status["data"]] == [1, 2]
    assert "2 page(s)" in summary
    assert any(f.endswith("-page2-boxes.png") for f in downloads)
    table, chosen, source = client.predict(current=None, api_name="/jobs")
    [row] = table["data"]
    job_id, filename, task, model, job_status, pages, _error = row
    assert job_id.startswith("job-")
    assert (filename, task, model, job_status, pages) == (
        "dotsocr_demo_pdf1.pdf",
        "layout",
        OCR_MODEL,
        "succeeded",
        "2/2",
    )
    assert chosen["value"] == job_id  # picked for Cancel and Download
    assert "this browser session" in source
    result, _ = client.predict(job_id=job_id, api_name="/job_result")
    assert json.loads(Path(result).read_text())["pages"][1]["page"] == 2
    # Cancelling a finished job: the gateway's 409, in words, in the tab's status line.
    _table, said = client.predict(job_id=job_id, api_name="/cancel_job")
    assert "Gateway error 409" in said


def test_the_job_checkbox_sends_a_single_page_through_jobs_too(client: Client) -> None:
    _run_document(client, PAGE, force_job=True)
    table, *_ = client.predict(current=None, api_name="/jobs")
    # The gateway's GET /v1/jobs lists this module's other jobs too (no file name: another session made them).
    assert [row[1] for row in table["data"] if row[1]] == ["dotsocr_demo_image1.jpg"]


def test_an_unknown_model_is_the_gateways_message(client: Client) -> None:
    summary, _status, downloads, *_ = _run_document(client, PAGE, model_name="no-such-model")
    assert re.search(r"Gateway error 404 model_not_found: .*no-such-model", summary), summary
    assert not downloads  # nothing left over from an earlier answer


def test_a_file_that_is_not_a_document_is_refused_in_words(client: Client, tmp_path: Path) -> None:
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is not an image")
    summary, *_ = _run_document(client, junk)
    assert re.search(r"Gateway error 400 invalid_request_error: .*not an image", summary), summary


def test_a_chat_turn_streams_the_models_answer(client: Client) -> None:
    job = client.submit(
        message={"text": "What is on the page?", "files": [handle_file(str(PAGE))]},
        model_name=CHAT_MODEL,
        temp=0.2,
        limit=64,
        system_prompt="",
        api_name="/chat",
    )
    outputs = list(job)  # every streamed update
    conversation, entry, usage = job.result()
    texts = [part["text"] for message in conversation for part in message["content"] if part.get("type") == "text"]
    assert texts == ["What is on the page?", CHAT_REPLY]
    files = [part for message in conversation for part in message["content"] if part.get("type") == "file"]
    assert len(files) == 1  # the image shows in the conversation
    assert "tokens:" in usage
    assert not entry or not entry.get("text")  # the input box was cleared
    partial = [o[0][-1]["content"][0]["text"] for o in outputs if o[0] and o[0][-1]["role"] == "assistant"]
    assert any(0 < len(text) < len(CHAT_REPLY) for text in partial if text)  # it arrived in pieces


def test_a_chat_with_an_unknown_model_is_a_readable_error(client: Client) -> None:
    conversation, entry, said = client.predict(
        message={"text": "Hello", "files": []},
        model_name="no-such-model",
        temp=0.7,
        limit=16,
        system_prompt="",
        api_name="/chat",
    )
    assert "Gateway error 404 model_not_found" in said
    assert "model_not_found" in conversation[-1]["content"][0]["text"]  # said in the conversation too
    assert entry["text"] == "Hello"  # the message is back in the box for another try


def test_the_models_tab_joins_live_status_and_the_catalogue(client: Client) -> None:
    table, problem = client.predict(api_name="/models")
    assert problem == ""
    rows = {row[0]: dict(zip(table["headers"], row, strict=True)) for row in table["data"]}
    assert rows[OCR_MODEL]["status"] == "ready"
    assert "layout" in rows[OCR_MODEL]["tasks"]
    assert rows[CHAT_MODEL]["status"] == "ready"
    # Configured but not served by this gateway; every model now has an engine (got-ocr2: transformers serve).
    assert rows["got-ocr2"]["status"] == "not served here"
    assert rows["got-ocr2"]["engine"] == "transformers"
    assert rows["moondream2"]["engine"] == "llama.cpp"
    assert rows[OCR_MODEL]["fits 16 GB"].startswith("yes")
    assert rows[OCR_MODEL]["context"]  # reported by the stand-in, or planned
    assert list(rows)[:2] == [OCR_MODEL, CHAT_MODEL]  # served models first


@pytest.fixture
def ui_without_gateway() -> Iterator[UIServer]:
    with UIServer(f"http://127.0.0.1:{free_port()}") as ui:  # nothing listens there
        yield ui


def test_a_gateway_that_is_down_is_reported_not_a_traceback(ui_without_gateway: UIServer) -> None:
    client = Client(ui_without_gateway.url, verbose=False)
    _table, problem = client.predict(api_name="/models")
    assert "Cannot reach the gateway" in problem
    summary, *_ = _run_document(client, PAGE)
    assert "Cannot reach the gateway" in summary


def test_an_api_key_is_sent_and_a_missing_one_is_explained(tmp_path: Path) -> None:
    chat = StandinServer(StandinConfig(models=(CHAT_MODEL,), reply=CHAT_REPLY)).start()
    settings = gateway_settings({CHAT_MODEL: [chat.base_url]}, api_keys="sesame", store_path=tmp_path / "store.sqlite3")
    gateway = GatewayServer(settings).start()
    try:
        gateway.wait_ready()
        with UIServer(gateway.root_url, api_key="sesame") as keyed, UIServer(gateway.root_url) as keyless:
            table, _ = Client(keyed.url, verbose=False).predict(api_name="/models")
            assert [row[0] for row in table["data"]][:1] == [CHAT_MODEL]
            _, problem = Client(keyless.url, verbose=False).predict(api_name="/models")
            assert "Gateway error 401" in problem
    finally:
        gateway.stop()
        chat.stop()
