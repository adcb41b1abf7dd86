"""A real gateway in front of vLLM stand-ins (dots-ocr answering in its own format, and a chat model), and the
web UI in front of that gateway; shared by a test module, since the UI takes a second or two to start."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launchers.vllm_standin import StandinConfig, StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL, gateway_settings
from tests.running_gateway import GatewayServer
from tests.ui.running_ui import UIServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image1.jpg"  # 1700 x 2250, one page
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 pages
CHAT_REPLY = "The page shows a simulated journal article."


@dataclass
class Stack:
    gateway: GatewayServer
    ui: UIServer
    dots: StandinServer
    chat: StandinServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dots = StandinServer(StandinConfig(models=(OCR_MODEL,), responder=dots_ocr_answer, max_model_len=32768)).start()
    # A few tokens a second so a streamed answer arrives in pieces, as from vLLM.
    chat = StandinServer(StandinConfig(models=(CHAT_MODEL,), reply=CHAT_REPLY, tokens_per_s=50)).start()
    settings = gateway_settings(
        {OCR_MODEL: [dots.base_url], CHAT_MODEL: [chat.base_url]},
        store_path=tmp_path_factory.mktemp("store") / "gateway-store.sqlite3",
        read_timeout_s=30.0,
    )
    gateway = GatewayServer(settings).start()
    try:
        gateway.wait_ready()
        with UIServer(gateway.root_url, job_pages=1) as ui:
            yield Stack(gateway, ui, dots, chat)
    finally:
        gateway.stop()
        dots.stop()
        chat.stop()
