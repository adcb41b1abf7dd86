"""Answers whose blocks carry boxes in a text markup, read into the same elements as dots.ocr's JSON.

    grounding_tags  <|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|> then the block's text until the
                    next tag (DeepSeek-OCR/-OCR-2 "<|grounding|>Convert the document to markdown.")
    marker_blocks   ![label](x1,y1,x2,y2) then the block's text until the next marker; `label+` continues a
                    block from the page before (LightOnOCR-3 "grounding")
    quad_lines      (x1, y1), (x2, y2), (x3, y3), (x4, y4) text, one text line each (dots.mocr scene spotting)

Each reader yields (label, corner numbers, text) items; `build_elements` validates them exactly as the JSON
reader does (boxes clamped when mostly on the page, loops and duplicates removed) in the answer's own
coordinate space: model-input pixels, or the 0..grid scale of normalised boxes. The caller maps them to the
page. Coordinates are parsed as numbers, never evaluated (DeepSeek's own script calls eval on them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Literal

from gateway.documents.output.json_salvage import JSONValue
from gateway.documents.output.layout import LayoutElement, LayoutParse, clamp_bbox, collapse_runaway, without_loops

Item = tuple[str, list[JSONValue] | None, str]  # label, [x1, y1, x2, y2] or None when unreadable, text

_REF = re.compile(r"<\|ref\|>(.*?)<\|/ref\|><\|det\|>(.*?)<\|/det\|>", re.DOTALL)
_OPEN_REF = re.compile(r"<\|ref\|>")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_BOX_LIST = re.compile(r"\[\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*\]")
_MARKER = re.compile(r"!\[([A-Za-z_][\w-]*?\+?)\]\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)")
_QUAD = re.compile(r"^\s*" + r"\s*,\s*".join([r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)"] * 4) + r"\s*(.*?)\s*$")
PICTURE = "Picture"


def grounding_tag_items(raw: str, repairs: Counter[str]) -> Iterator[Item]:
    """DeepSeek's tagged blocks; several boxes in one <|det|> become their hull (one block, its text once)."""
    matches = list(_REF.finditer(raw))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(raw)
        text = raw[match.end() : end]
        dangling = _OPEN_REF.search(text)  # a tag the answer was cut inside
        if dangling is not None:
            text = text[: dangling.start()]
            repairs["truncated_tail"] += 1
        boxes = [[float(n) for n in box.groups()] for box in _BOX_LIST.finditer(match.group(2))]
        hull: list[JSONValue] | None = None
        if boxes:
            hull = [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ]
        yield match.group(1).strip(), hull, text.strip()


def marker_block_items(raw: str, repairs: Counter[str]) -> Iterator[Item]:
    """LightOnOCR-3's `![label](x1,y1,x2,y2)` blocks; a continuation label (`text+`) is read as its label."""
    matches = list(_MARKER.finditer(raw))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(raw)
        label = match.group(1).removesuffix("+")
        box: list[JSONValue] = [int(match.group(n)) for n in range(2, 6)]
        yield label, box, raw[match.end() : end].strip()


def quad_line_items(raw: str, repairs: Counter[str]) -> Iterator[Item]:
    """dots.mocr's spotted lines: the quadrilateral's axis-aligned hull, the line's text."""
    for line in raw.splitlines():
        if not line.strip():
            continue
        match = _QUAD.match(line)
        if match is None:
            if _NUMBER.search(line):
                repairs["unreadable_line"] += 1
            continue
        xs = [int(match.group(n)) for n in (1, 3, 5, 7)]
        ys = [int(match.group(n)) for n in (2, 4, 6, 8)]
        yield "text", [min(xs), min(ys), max(xs), max(ys)], match.group(9)


def build_elements(
    items: Iterator[Item],
    repairs: Counter[str],
    *,
    width: int,
    height: int,
    labels: Mapping[str, str],
    with_text: bool,
) -> LayoutParse:
    """Validated elements from reader items, in the items' coordinate space (`width` x `height`)."""
    dropped: Counter[str] = Counter()
    valid: list[LayoutElement] = []
    orphans: list[str] = []
    for label, box, text in items:
        category = labels.get(label, label)
        bbox, reason = clamp_bbox(box, width, height) if box is not None else (None, "bad_bbox")
        if bbox is None:
            dropped[reason] += 1
            if text:
                orphans.append(text)
            continue
        if reason == "bbox_clamped":
            repairs["bbox_clamped"] += 1
        kept: str | None = None
        if with_text and category != PICTURE:
            kept, runs = collapse_runaway(text)
            if runs:
                repairs["repetition_loop"] += runs
        valid.append(LayoutElement(category, bbox, kept))
    elements = without_loops(valid, repairs)
    texts = [e.text.strip() for e in elements if e.text and e.text.strip()] or [t.strip() for t in orphans]
    status: Literal["ok", "repaired", "invalid"] = "invalid" if not elements else "ok"
    if elements and (repairs or dropped):
        status = "repaired"
    return LayoutParse(elements, status, dict(repairs), dict(dropped), "\n\n".join(texts))
