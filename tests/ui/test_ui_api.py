"""The UI's calls through gradio_client against the running UI, itself in front of a real gateway and stand-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from tests.conftest import OCR_MODEL
from tests.running_gateway import GatewayServer
from tests.ui.conftest import PAGE
from tests.ui.running_ui import UIServer


@pytest.fixture(scope="module")
def client(stack: tuple[GatewayServer, UIServer]) -> Client:
    return Client(stack[1].url, verbose=False)


def _run_document(client: Client, path: Path | None, **overrides: Any) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "file_path": handle_file(str(path)) if path else None,
        "sample_label": None,
        "task_label": "Layout",
        "model_name": OCR_MODEL,
        "region": "",
        "page_spec": "",
        "dots": 200,
        "force_job": False,
        "jobs": [],
    }
    values.update(overrides)
    return tuple(client.predict(*values.values(), api_name="/run_document"))


def test_layout_of_a_page_gives_boxes_markdown_and_downloads(client: Client) -> None:
    summary, status, downloads, _page, legend, overlay, markdown, elements, *_ = _run_document(client, PAGE)
    assert "**ok**" in summary
    assert f"`{OCR_MODEL}`" in summary
    assert status["data"][0][:2] == [1, "ok"]
    assert "# A Simulated Page" in markdown
    rows = elements["data"]
    assert [row[2] for row in rows[:3]] == ["Page-header", "Title", "Text"]
    assert [row[1] for row in rows] == list(range(len(rows)))  # reading order, numbered from 0
    names = sorted(Path(f).name for f in downloads)
    assert names == sorted(
        [
            "dotsocr_demo_image1.json",
            "dotsocr_demo_image1.md",
            "dotsocr_demo_image1.csv",
            "dotsocr_demo_image1-page1-boxes.png",
        ]
    )
    document = json.loads(Path(next(f for f in downloads if f.endswith(".json"))).read_text())
    assert document["object"] == "document.layout"
    assert document["pages"][0]["width"] == 1700
    assert "Title" in legend
    assert Path(overlay).is_file()
