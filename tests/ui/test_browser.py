"""The UI in a real browser (Playwright driving Debian's Chromium): what a person sees and clicks.

No browser is downloaded: Playwright drives /usr/bin/chromium (`apt-get install chromium`, which .ci/run does).
Where it is missing the tests are skipped locally and fail in CI. With UPDATE_SCREENSHOTS=1 they also save the
screenshots docs/ui.md shows (docs/screenshots/).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateway.settings import PROJECT_ROOT
from tests.conftest import CHAT_MODEL
from tests.ports import free_port
from tests.ui.conftest import CHAT_REPLY, PAGE, Stack
from tests.ui.running_ui import UIServer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
_TIMEOUT_MS = 60_000  # a busy 2-core machine: a page's layout through the stand-in can take seconds


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(_TIMEOUT_MS)
    yield tab
    context.close()


def _screenshot(page: Page, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def _open(page: Page, url: str) -> None:
    page.goto(url)
    # The model pickers are filled on load from /v1/models: wait for it so the run uses a listed model.
    expect(page.locator("#document-model input")).to_have_value("dots-ocr")


def test_layout_of_an_uploaded_page_shows_boxes_markdown_and_downloads_json(stack: Stack, page: Page) -> None:
    _open(page, stack.ui.url)
    page.locator("#document-file input[type=file]").set_input_files(PAGE)
    page.locator("#document-run").click()
    overlay = page.locator("#overlay img")
    expect(overlay).to_be_visible()
    assert overlay.evaluate("img => img.naturalWidth") > 0  # a real picture, not a broken one
    expect(page.locator("#document-markdown")).to_contain_text("A Simulated Page")
    expect(page.locator("#document-summary")).to_contain_text("ok")
    expect(page.locator("#elements")).to_contain_text("Section-header")
    # Selecting an element shows its text.
    page.locator("#elements").get_by_text("This text was written by the vLLM").first.click()
    expect(page.locator("#element-text textarea")).to_have_value(re.compile("^This text was written by the vLLM"))
    _screenshot(page, "document")
    with page.expect_download() as download_info:
        page.locator("#downloads a[download$='.json']").click()
    document = json.loads(Path(download_info.value.path()).read_text())
    assert document["object"] == "document.layout"
    assert [p["page"] for p in document["pages"]] == [1]


def test_a_streamed_chat_turn_appears(stack: Stack, page: Page) -> None:
    _open(page, stack.ui.url)
    page.get_by_role("tab", name="Chat").click()
    expect(page.locator("#chat-model input")).to_have_value(CHAT_MODEL)
    page.locator("#chat-input input[type=file]").set_input_files(PAGE)
    expect(page.locator("#chat-input img")).to_have_count(1)  # the attachment's thumbnail, before sending
    entry = page.locator("#chat-input textarea")
    entry.fill("What is on this page?")
    entry.press("Enter")
    chatbot = page.locator("#chatbot")
    expect(chatbot).to_contain_text("What is on this page?")
    expect(chatbot).to_contain_text(CHAT_REPLY)
    expect(chatbot.locator("img").first).to_be_visible()  # the image is part of the conversation
    expect(page.locator("#chat-usage")).to_contain_text("tokens:")
    _screenshot(page, "chat")


def test_the_models_tab_shows_the_catalogue(stack: Stack, page: Page) -> None:
    _open(page, stack.ui.url)
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#models-table")
    expect(table).to_contain_text("dots-ocr")
    expect(table).to_contain_text("not served here")  # got-ocr2: configured, served by no upstream of this gateway
    expect(table).to_contain_text("transformers")  # its engine
    _screenshot(page, "models")


def test_a_long_document_runs_as_a_job_the_jobs_tab_lists(stack: Stack, page: Page) -> None:
    _open(page, stack.ui.url)
    page.locator("#document-sample input").click()
    page.get_by_role("option", name="Academic calendar, 2 pages (PDF)").click()
    expect(page.locator("#document-sample input")).to_have_value("Academic calendar, 2 pages (PDF)")
    page.locator("#document-run").click()  # two pages: over this UI's threshold of one, so a job
    expect(page.locator("#document-summary")).to_contain_text("2 page(s)")
    expect(page.locator("#overlay img")).to_be_visible()
    first_page = page.locator("#overlay img").get_attribute("src")
    # Page 2 from the picker: its picture and its elements replace page 1's.
    page.locator("#document-page input").click()
    page.get_by_role("option", name="2", exact=True).click()
    expect(page.locator("#overlay img")).not_to_have_attribute("src", first_page or "")
    expect(page.locator("#elements tbody tr").first.locator("td").first).to_have_text("2")  # the page column
    page.get_by_role("tab", name="Jobs").click()
    page.locator("#jobs-refresh").click()
    table = page.locator("#jobs-table")
    expect(table).to_contain_text("dotsocr_demo_pdf1.pdf")
    expect(table).to_contain_text("succeeded")
    expect(table).to_contain_text("2/2")
    _screenshot(page, "jobs")


def test_a_gateway_error_is_shown_in_words(stack: Stack, page: Page, tmp_path: Path) -> None:
    junk = tmp_path / "scan.png"
    junk.write_bytes(b"not really a PNG")
    _open(page, stack.ui.url)
    page.locator("#document-file input[type=file]").set_input_files(junk)
    page.locator("#document-run").click()
    expect(page.locator("#document-summary")).to_contain_text("Gateway error 400 invalid_request_error")
    expect(page.locator("#document-summary")).to_contain_text("not an image")
    expect(page.get_by_text("Traceback")).to_have_count(0)
    _screenshot(page, "error")


def test_a_gateway_that_is_down_is_explained_on_load(page: Page) -> None:
    with UIServer(f"http://127.0.0.1:{free_port()}") as ui:
        page.goto(ui.url)
        expect(page.locator("#gateway-banner")).to_contain_text("Cannot reach the gateway")
        page.get_by_role("tab", name="Models").click()
        page.locator("#models-refresh").click()
        expect(page.locator("#models-problem")).to_contain_text("Cannot reach the gateway")
