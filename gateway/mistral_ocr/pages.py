"""A read page in Mistral's shape: `index`, `markdown`, `images`, `tables`, `header`, `footer`, `dimensions`.

Mistral's fields come first and mean what they mean there; the gateway's own facts about the page (its layout
`elements` with boxes, `status`, `attempts`, `repairs`, ...) sit beside them, where the SDK's models ignore them.
With layout elements (dots.ocr) the Markdown is rebuilt from them: Pictures become `![img-N.png](img-N.png)`
references to `images`, Tables are Markdown inline or, with `table_format`, references to `tables`, and page
headers and footers move to `header`/`footer` when `extract_header`/`extract_footer` ask. A model without layout
gives its Markdown as it is, with no images or tables.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from gateway.documents.images.prepare import encode_png
from gateway.documents.output.layout import LayoutElement
from gateway.documents.output.markdown import layout_markdown
from gateway.documents.response import RenderedPage
from gateway.mistral_ocr.request import MistralOptions
from gateway.mistral_ocr.tables import html_table_markdown

IMAGE_DPI = 72  # what `dimensions.dpi` says of an image (it was not rendered at a DPI); PDF pages give theirs


@dataclass
class Picture:
    """One extracted image: its entry in the page's `images`, and its pixels while annotations need them."""

    entry: dict[str, Any]
    crop: Image.Image | None


@dataclass
class _Counters:
    images: int = 0
    tables: int = 0
    pictures: list[Picture] = field(default_factory=list)


def shape_pages(
    pages: list[RenderedPage], options: MistralOptions, *, keep_crops: bool
) -> tuple[list[dict[str, Any]], list[Picture]]:
    """Every page in Mistral's shape, and the extracted pictures (with their crops when `keep_crops`).

    CPU work (crops, PNG encoding): run it in a worker thread.
    """
    counters = _Counters()
    shaped = [_page(page, options, counters, keep_crops) for page in pages]
    return shaped, counters.pictures


def _page(page: RenderedPage, options: MistralOptions, counters: _Counters, keep_crops: bool) -> dict[str, Any]:
    result = page.result
    if result is None:
        assert page.error is not None
        return {
            "index": page.number - 1,
            "markdown": "",
            "images": [],
            "tables": [],
            "dimensions": None,
            "status": "failed",
            "error": page.error.body()["error"],
        }
    body: dict[str, Any] = {
        "index": page.number - 1,
        "markdown": result.markdown,
        "images": [],
        "tables": [],
        "hyperlinks": [],
        "header": None,
        "footer": None,
    }
    if result.elements:
        _from_elements(body, result.elements, page, options, counters, keep_crops)
    body["dimensions"] = {"dpi": page.dpi or IMAGE_DPI, "height": page.height, "width": page.width}
    body.update(
        {
            "status": result.status,
            "attempts": result.attempts,
            "finish_reason": result.finish_reason,
            "usage": result.usage,
            "repairs": result.repairs,
            "dropped_elements": result.dropped,
            "elements": [
                {
                    "index": i,
                    "category": e.category,
                    "bbox": list(e.bbox),
                    **({"text": e.text} if e.text is not None else {}),
                }
                for i, e in enumerate(result.elements)
            ],
            **({"fallback": result.fallback} if result.fallback else {}),
        }
    )
    return body


def _from_elements(
    body: dict[str, Any],
    elements: list[LayoutElement],
    page: RenderedPage,
    options: MistralOptions,
    counters: _Counters,
    keep_crops: bool,
) -> None:
    blocks: list[str] = []
    headers: list[str] = []
    footers: list[str] = []
    for element in elements:
        text = (element.text or "").strip()
        if element.category == "Page-header" and options.extract_header:
            headers += [text] if text else []
        elif element.category == "Page-footer" and options.extract_footer:
            footers += [text] if text else []
        elif element.category == "Picture" and _extracted(element, options, counters):
            blocks.append(_picture(body, element, page, options, counters, keep_crops))
        elif element.category == "Table" and text:
            blocks.append(_table(body, text, options, counters))
        else:
            blocks.append(layout_markdown([element], skip_headers_footers=False))
    body["markdown"] = "\n\n".join(block for block in blocks if block.strip())
    body["header"] = "\n\n".join(headers) if headers else None
    body["footer"] = "\n\n".join(footers) if footers else None


def _extracted(element: LayoutElement, options: MistralOptions, counters: _Counters) -> bool:
    """Within `image_limit` (all pages together) and at least `image_min_size` wide and high."""
    x1, y1, x2, y2 = element.bbox
    if options.image_min_size is not None and min(x2 - x1, y2 - y1) < options.image_min_size:
        return False
    return options.image_limit is None or counters.images < options.image_limit


def _picture(
    body: dict[str, Any],
    element: LayoutElement,
    page: RenderedPage,
    options: MistralOptions,
    counters: _Counters,
    keep_crops: bool,
) -> str:
    image_id = f"img-{counters.images}.png"
    counters.images += 1
    x1, y1, x2, y2 = element.bbox
    entry: dict[str, Any] = {
        "id": image_id,
        "top_left_x": x1,
        "top_left_y": y1,
        "bottom_right_x": x2,
        "bottom_right_y": y2,
    }
    crop = _crop(page.image, element.bbox) if page.image is not None else None
    if options.include_image_base64:
        entry["image_base64"] = (
            None if crop is None else "data:image/png;base64," + base64.b64encode(encode_png(crop)).decode("ascii")
        )
    body["images"].append(entry)
    counters.pictures.append(Picture(entry, crop if keep_crops else None))
    return f"![{image_id}]({image_id})"


def _crop(image: Image.Image, bbox: tuple[int, int, int, int]) -> Image.Image | None:
    width, height = image.size
    x1, y1, x2, y2 = bbox
    box = (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None  # a box with no area left inside the page: listed, with no pixels
    return image.crop(box)


def _table(body: dict[str, Any], html: str, options: MistralOptions, counters: _Counters) -> str:
    if options.table_format is None:
        return html_table_markdown(html)
    table_id = f"tbl-{counters.tables}.{'html' if options.table_format == 'html' else 'md'}"
    counters.tables += 1
    content = html if options.table_format == "html" else html_table_markdown(html)
    body["tables"].append({"id": table_id, "content": content, "format": options.table_format})
    return f"[{table_id}]({table_id})"
