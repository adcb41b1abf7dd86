"""/docs and /redoc work without the internet: rendered in headless Chromium whose every outside request is cut."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.security.auth import DOCS_ASSET_PREFIX
from tests.running_gateway import GatewayServer

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`apt-get install chromium`, as .ci/run does)

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"no {CHROMIUM}: apt-get install chromium (never `playwright install`)"
)


class _Page:
    """A Chromium page that may reach 127.0.0.1 only; every other request is aborted and remembered."""

    def __init__(self, page: playwright_sync.Page, outside: list[str]) -> None:
        self.page = page
        self.outside = outside


@pytest.fixture
def offline_page() -> Iterator[_Page]:
    outside: list[str] = []

    def only_loopback(route: playwright_sync.Route) -> None:
        request = route.request
        if urlsplit(request.url).hostname == "127.0.0.1" or request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    with playwright_sync.sync_playwright() as playwright:
        # Two locks: every name resolves to nowhere, and Playwright's routing aborts (and records) anything else.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            context = browser.new_context()
            context.route("**/*", only_loopback)
            yield _Page(context.new_page(), outside)
        finally:
            browser.close()


def test_swagger_ui_renders_every_operation_offline(gateway: GatewayServer, offline_page: _Page) -> None:
    page = offline_page.page
    page.goto(gateway.root_url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/v1/chat/completions", "/v1/ocr", "/v1/layout", "/v1/models"} <= {p.strip() for p in paths}
    assert offline_page.outside == []


def test_redoc_renders_the_operations_offline(gateway: GatewayServer, offline_page: _Page) -> None:
    page = offline_page.page
    page.goto(gateway.root_url + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=20_000)
    text = page.inner_text("body")
    assert "/v1/chat/completions" in text
    assert "/v1/ocr" in text
    assert offline_page.outside == []


def test_the_pages_name_only_the_gateways_own_assets(gateway: GatewayServer) -> None:
    for path in ("/docs", "/redoc"):
        html = httpx.get(gateway.root_url + path).text
        assert "cdn." not in html
        assert "googleapis" not in html
        assert DOCS_ASSET_PREFIX in html
    script = httpx.get(gateway.root_url + DOCS_ASSET_PREFIX + "swagger-ui-bundle.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    unknown = httpx.get(gateway.root_url + DOCS_ASSET_PREFIX + "..%2Fcore.py")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
