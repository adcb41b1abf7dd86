"""Answers in dots.ocr's documented output format, so document endpoints can be exercised without a GPU.

dots.ocr answers the layout prompts with a JSON array of `{"bbox": [x1, y1, x2, y2], "category", "text"}` in
the pixels of the image it was sent (the gateway sends it already at the model-input size), in reading
order, `text` omitted for Picture and for the layout-only prompt; the OCR and grounding prompts get Markdown.
The page drawn here is a fixed template scaled to the image: a simulation, not a reading of the image. A page
the stand-in was told about in advance (`known_pages.py`: a PDF page it recognises) is answered from that
PDF's own text layer instead, still labelled simulated.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from .known_pages import KnownPage, TextLine, find_page

# (category, left, top, right, bottom as fractions of the page, text)
_TEMPLATE: tuple[tuple[str, float, float, float, float, str], ...] = (
    ("Page-header", 0.08, 0.03, 0.60, 0.05, "Simulated Journal, Vol. 1"),
    ("Title", 0.12, 0.08, 0.88, 0.13, "# A Simulated Page"),
    ("Text", 0.08, 0.16, 0.92, 0.30, "This text was written by the vLLM stand-in in dots.ocr's output format."),
    ("Section-header", 0.08, 0.33, 0.50, 0.36, "## 1. Results"),
    ("Formula", 0.30, 0.38, 0.70, 0.42, "E = m c^{2}"),
    (
        "Table",
        0.08,
        0.45,
        0.92,
        0.65,
        "<table><tr><th>Model</th><th>Pages/s</th></tr><tr><td>stand-in</td><td>0</td></tr></table>",
    ),
    ("Picture", 0.20, 0.68, 0.80, 0.88, ""),
    ("Caption", 0.20, 0.89, 0.80, 0.91, "Figure 1: a simulated picture."),
    ("Page-footer", 0.45, 0.95, 0.55, 0.97, "1"),
)
_OCR_MARK = "Extract the text content"
_GROUNDING_MARK = "Bounding Box:"
_LAYOUT_MARK = "Please output the layout information"
_LAYOUT_ONLY_MARK = "Do not output the corresponding text"
CHAT_REPLY = "[SIMULATED dots-ocr] A chat reply from the vLLM stand-in; no model ran."


_BOX = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]")


def dots_ocr_responder(
    chat_reply: str = CHAT_REPLY, known_pages: Sequence[KnownPage] = ()
) -> Callable[[dict[str, Any]], str]:
    """A stand-in responder: dots.ocr's answers to its document prompts, `chat_reply` to anything else."""
    pages = list(known_pages)

    def respond(request: dict[str, Any]) -> str:
        return dots_ocr_answer(request, chat_reply=chat_reply, known_pages=pages)

    return respond


def dots_ocr_answer(
    request: dict[str, Any], *, chat_reply: str = CHAT_REPLY, known_pages: list[KnownPage] | None = None
) -> str:
    """What dots.ocr would answer to this request's prompt, for an image of this request's size."""
    prompt, width, height, image_url = _prompt_and_size(request)
    is_document_prompt = any(mark in prompt for mark in (_GROUNDING_MARK, _LAYOUT_MARK, _OCR_MARK))
    if not is_document_prompt:
        return chat_reply
    known = find_page(known_pages or [], image_url) if image_url else None
    if known is not None:
        return _from_text_layer(known, prompt, width, height)
    if _GROUNDING_MARK in prompt:
        return "Text read from the requested region (simulated)."
    if _OCR_MARK in prompt:
        return "\n\n".join(
            text for category, *_, text in _TEMPLATE if text and category not in ("Page-header", "Page-footer")
        )
    with_text = _LAYOUT_ONLY_MARK not in prompt
    elements = []
    for category, left, top, right, bottom, text in _TEMPLATE:
        element: dict[str, Any] = {
            "bbox": [round(left * width), round(top * height), round(right * width), round(bottom * height)],
            "category": category,
        }
        if with_text and category != "Picture":
            element["text"] = text
        elements.append(element)
    # dots.ocr writes `{"bbox": ...}` with no space after the brace; keep its serialisation.
    return orjson.dumps(elements).decode()


def _from_text_layer(page: KnownPage, prompt: str, width: int, height: int) -> str:
    """dots.ocr's answer shapes, filled from the recognised PDF page's own text lines."""
    label = f"[SIMULATED dots-ocr: no model ran; this is the text layer of {page.source}]"
    if _GROUNDING_MARK in prompt:  # plain text of the region, as dots.ocr answers its grounding prompt
        box = _BOX.search(prompt.rpartition(_GROUNDING_MARK)[2])
        x1, y1, x2, y2 = (int(v) for v in box.groups()) if box else (0, 0, width, height)
        inside = [
            line.text for line in page.lines if _centre_inside(line, x1 / width, y1 / height, x2 / width, y2 / height)
        ]
        return "\n".join(inside) or label
    if _OCR_MARK in prompt:
        return "\n\n".join([label, *(line.text for line in page.lines)])
    with_text = _LAYOUT_ONLY_MARK not in prompt
    # The label as a page header: it shows in `markdown`, and `markdown_no_headers` leaves it out as it should.
    header = TextLine(0.0, 0.0, 1.0, min(0.02, page.lines[0].top) or 0.01, label)
    elements = []
    for category, line in [("Page-header", header), *(("Text", line) for line in page.lines)]:
        element: dict[str, Any] = {
            "bbox": [
                round(line.left * width),
                round(line.top * height),
                max(round(line.right * width), round(line.left * width) + 1),
                max(round(line.bottom * height), round(line.top * height) + 1),
            ],
            "category": category,
        }
        if with_text:
            element["text"] = line.text
        elements.append(element)
    return orjson.dumps(elements).decode()


def _centre_inside(line: TextLine, left: float, top: float, right: float, bottom: float) -> bool:
    x, y = (line.left + line.right) / 2, (line.top + line.bottom) / 2
    return left <= x <= right and top <= y <= bottom


def _prompt_and_size(request: dict[str, Any]) -> tuple[str, int, int, str]:
    prompt, width, height, image_url = "", 1000, 1400, ""
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                prompt += str(part.get("text", ""))
            elif part.get("type") == "image_url":
                image_url = str((part.get("image_url") or {}).get("url", ""))
                width, height = _png_size(image_url) or (width, height)
    return prompt, width, height, image_url


def _png_size(url: str) -> tuple[int, int] | None:
    # The PNG header holds the size at bytes 16..24; 32 base64 characters decode to 24 bytes.
    try:
        head = base64.b64decode(url.partition(",")[2][:32])
    except ValueError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)
