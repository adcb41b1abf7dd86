"""Answers in dots.ocr's documented output format, so document endpoints can be exercised without a GPU.

dots.ocr answers the layout prompts with a JSON array of `{"bbox": [x1, y1, x2, y2], "category", "text"}` in
the pixels of the image it was sent (the gateway sends it already at the model-input size), in reading
order, `text` omitted for Picture and for the layout-only prompt; the OCR and grounding prompts get Markdown.
The page drawn here is a fixed template scaled to the image: a simulation, not a reading of the image.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import orjson

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


def dots_ocr_responder(chat_reply: str = CHAT_REPLY) -> Callable[[dict[str, Any]], str]:
    """A stand-in responder: dots.ocr's answers to its document prompts, `chat_reply` to anything else."""

    def respond(request: dict[str, Any]) -> str:
        return dots_ocr_answer(request, chat_reply=chat_reply)

    return respond


def dots_ocr_answer(request: dict[str, Any], *, chat_reply: str = CHAT_REPLY) -> str:
    """What dots.ocr would answer to this request's prompt, for an image of this request's size."""
    prompt, width, height = _prompt_and_size(request)
    if _GROUNDING_MARK in prompt:
        return "Text read from the requested region (simulated)."
    if _LAYOUT_MARK not in prompt and _OCR_MARK not in prompt:
        return chat_reply
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


def _prompt_and_size(request: dict[str, Any]) -> tuple[str, int, int]:
    prompt, width, height = "", 1000, 1400
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                prompt += str(part.get("text", ""))
            elif part.get("type") == "image_url":
                width, height = _png_size(str((part.get("image_url") or {}).get("url", ""))) or (width, height)
    return prompt, width, height


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
