"""Shaping a document result: one JSON shape for every input, plus Markdown, CSV and PNG renderings.

A document holds `pages`; an image is a one-page document, so multi-page input fits the same shape.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from gateway.documents.page import PageResult, PageStatus
from gateway.errors import GatewayError

_STATUS_RANK: dict[PageStatus, int] = {"ok": 0, "repaired": 1, "degraded": 2, "failed": 3}
_PAGE_BREAK = "\n\n"


@dataclass(frozen=True)
class RenderedPage:
    """A page's result with the original image's size, or the error that stopped it, ready to be shaped."""

    number: int  # 1-based page number in the document
    width: int
    height: int
    result: PageResult | None
    error: GatewayError | None = None
    dpi: int | None = None  # the resolution a PDF page was rendered at
    image: Image.Image | None = None  # the page as decoded, kept only when an overlay is to be drawn

    @property
    def status(self) -> PageStatus:
        return self.result.status if self.result is not None else "failed"

    @property
    def markdown(self) -> str:
        return self.result.markdown if self.result is not None else ""

    @property
    def markdown_no_headers(self) -> str:
        return self.result.markdown_no_headers if self.result is not None else ""


def document_status(pages: list[RenderedPage]) -> PageStatus:
    """The worst page status."""
    return max((page.status for page in pages), key=_STATUS_RANK.__getitem__, default="ok")


def document_json(
    document_id: str,
    model: str,
    task: str,
    pages: list[RenderedPage],
    timings: dict[str, float],
    *,
    filename: str = "",
) -> dict[str, Any]:
    """The JSON answer of /v1/ocr and /v1/layout."""
    usage: dict[str, int] = {}
    for page in pages:
        for key, value in (page.result.usage if page.result else {}).items():
            usage[key] = usage.get(key, 0) + value
    return {
        "id": document_id,
        "object": f"document.{task}",
        "model": model,
        **({"filename": filename} if filename else {}),
        "status": document_status(pages),
        "markdown": _PAGE_BREAK.join(p.markdown for p in pages if p.markdown),
        "markdown_no_headers": _PAGE_BREAK.join(p.markdown_no_headers for p in pages if p.markdown_no_headers),
        "usage": usage,
        "timings": {key: round(value, 2) for key, value in timings.items()},
        "pages": [_page_json(page, with_elements=task == "layout") for page in pages],
    }


def _page_json(page: RenderedPage, *, with_elements: bool) -> dict[str, Any]:
    result = page.result
    if result is None:
        assert page.error is not None
        return {"page": page.number, "status": "failed", "error": page.error.body()["error"]}
    body: dict[str, Any] = {"page": page.number, "width": page.width, "height": page.height}
    if page.dpi is not None:
        body["dpi"] = page.dpi
    if with_elements:
        body["elements"] = [
            {
                "index": i,
                "category": e.category,
                "bbox": list(e.bbox),
                **({"text": e.text} if e.text is not None else {}),
            }
            for i, e in enumerate(result.elements)
        ]
    body.update(
        {
            "markdown": result.markdown,
            "markdown_no_headers": result.markdown_no_headers,
            "status": result.status,
            "attempts": result.attempts,
            "finish_reason": result.finish_reason,
            "usage": result.usage,
            "repairs": result.repairs,
            "dropped_elements": result.dropped,
            **({"fallback": result.fallback} if result.fallback else {}),
        }
    )
    return body


def document_csv(pages: list[RenderedPage]) -> str:
    """One row per layout element: page, index, category, x1, y1, x2, y2, text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["page", "index", "category", "x1", "y1", "x2", "y2", "text"])
    for page in pages:
        for i, element in enumerate(page.result.elements if page.result else []):
            writer.writerow([page.number, i, element.category, *element.bbox, element.text or ""])
    return out.getvalue()
