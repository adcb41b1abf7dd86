"""dots.ocr's layout answer turned into validated elements, repairing what a small model typically breaks.

The layout prompts ask for a JSON array of `{"bbox": [x1, y1, x2, y2], "category": ..., "text": ...}` in reading
order, with boxes in model-input pixels. What comes back can be cut by `max_tokens`, lose commas, loop on one
element or one table row, or wrap the array in a fence or an object. `parse_layout_output` reads it with the
tolerant single-pass reader in `json_salvage.py`, keeps every element that is valid, and reports each
repair and each drop by kind, so callers can decide between using the page, degrading it to text, or retrying.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from gateway.documents.output.json_salvage import JSONValue, is_partial, read_json

CATEGORIES: tuple[str, ...] = (
    "Caption",
    "Footnote",
    "Formula",
    "List-item",
    "Page-footer",
    "Page-header",
    "Picture",
    "Section-header",
    "Table",
    "Text",
    "Title",
)

# A box that runs past the page edge is clamped when at least this share of its area lies on the page: the
# model drew the right block a little too large, and its text is worth keeping. A box mostly off the page is
# no box on this image (coordinates on another scale, or a hallucinated element) and is dropped.
_MIN_AREA_ON_PAGE = 0.5
# The same (category, text) this many times is a generation loop, not a page with repeated lines.
_LOOP_MIN_COUNT = 5
# Runaway text: a unit of at least this many characters, repeated at least this many times in a row.
_RUNAWAY_MIN_UNIT = 10
_RUNAWAY_MIN_REPEATS = 10
# Longest unit looked for (a looping table row is well under this); bounds the work per position.
_RUNAWAY_MAX_UNIT = 2000
# Any qualifying run spans at least 100 characters, and at least 80 of them can hold an anchor whose
# 10-character window recurs one period later; probing every 32nd position therefore finds every run.
_RUNAWAY_ANCHOR_STRIDE = 32
_RUNAWAY_MAX_TRIES = 64


@dataclass(frozen=True, slots=True)
class LayoutElement:
    """One layout block. `bbox` is (x1, y1, x2, y2) in model-input pixels, what the model saw."""

    category: str
    bbox: tuple[int, int, int, int]
    text: str | None  # None for Picture and in detect (layout-only) mode


@dataclass(frozen=True)
class LayoutParse:
    """The outcome of reading one layout answer.

    `status` is "ok" when nothing was repaired or dropped, "repaired" when something was, and "invalid" when
    no valid element remains and the answer was not a legitimately empty list (the caller should retry).
    `cleaned_text` is the best plain text for a page that has to be degraded to text.
    """

    elements: list[LayoutElement]
    status: Literal["ok", "repaired", "invalid"]
    repairs: dict[str, int]
    dropped: dict[str, int]
    cleaned_text: str


def parse_layout_output(
    raw: str, *, width: int, height: int, with_text: bool, any_category: bool = False
) -> LayoutParse:
    """Read a layout answer for an image of `width` by `height` model-input pixels. Never raises.

    `with_text` is True for the layout-all prompt (text required except on Pictures) and False for the
    layout-only (detect) prompt, whose elements carry no text. `any_category` keeps categories outside
    dots.ocr's eleven (dots.mocr's web-page parsing, whose category set is not published).
    """
    salvage = read_json(raw)
    if not salvage.found:
        return LayoutParse([], "invalid", {}, {}, raw.strip())
    repairs: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    if salvage.missing_commas:
        repairs["missing_comma"] = salvage.missing_commas
    if is_partial(salvage.value):
        repairs["truncated_tail"] = 1
    items, array = _items(salvage.value, repairs)
    valid: list[LayoutElement] = []
    orphan_texts: list[str] = []  # texts of objects dropped for their box or category, for `cleaned_text`
    for item in items:
        if is_partial(item):
            continue  # the element the answer was cut inside; counted as `truncated_tail` above
        if not isinstance(item, dict):
            dropped["not_an_object"] += 1
            continue
        element, reason = _element(item, width, height, with_text, repairs, any_category)
        if element is not None:
            valid.append(element)
            continue
        dropped[reason] += 1
        text = item.get("text")
        if with_text and isinstance(text, str) and reason != "missing_text" and text.strip():
            orphan_texts.append(text)
    elements = without_loops(valid, repairs)
    texts = [element.text for element in elements if element.text and element.text.strip()]
    if not texts:
        texts = [collapse_runaway(text)[0] for text in dict.fromkeys(orphan_texts)]
    # `[]` (or `{"layout": []}`) is a blank page, a legitimate answer; `[` alone or only bad elements is not.
    blank_page = array is not None and not array and not is_partial(array)
    if not elements and not blank_page:
        status: Literal["ok", "repaired", "invalid"] = "invalid"
    else:
        status = "repaired" if repairs or dropped else "ok"
    return LayoutParse(elements, status, dict(repairs), dict(dropped), "\n\n".join(t.strip() for t in texts))


def _items(value: JSONValue, repairs: Counter[str]) -> tuple[list[JSONValue], list[JSONValue] | None]:
    """The candidate elements, and the array that held them (None for a lone element).

    The array itself, the one list inside a wrapper object, or one lone element.
    """
    if isinstance(value, list):
        return value, value
    if not isinstance(value, dict):
        return [], None
    lists = [member for member in value.values() if isinstance(member, list)]
    if "bbox" not in value and "category" not in value and len(lists) == 1:
        # {"layout": [...]}: a wrapper. An element holds a list too (its bbox), but names its fields.
        repairs["unwrapped_container"] += 1
        return lists[0], lists[0]
    if not is_partial(value):
        repairs["wrapped_object"] += 1
    return [value], None


def _element(
    item: dict[str, JSONValue], width: int, height: int, with_text: bool, repairs: Counter[str], any_category: bool
) -> tuple[LayoutElement | None, str]:
    """The element an object describes, or None and the reason it was dropped (checks in the order below)."""
    category = item.get("category")
    if not isinstance(category, str) or not (category in CATEGORIES or (any_category and category.strip())):
        return None, "unknown_category"
    bbox, reason = clamp_bbox(item.get("bbox"), width, height)
    if bbox is None:
        return None, reason
    text: str | None = None
    if with_text:
        raw_text = item.get("text")
        if category == "Picture":
            if raw_text is not None:
                repairs["picture_text_removed"] += 1
        elif not isinstance(raw_text, str):
            return None, "missing_text"
        else:
            text, runs = collapse_runaway(raw_text)
            if runs:
                repairs["repetition_loop"] += runs
    if reason == "bbox_clamped":
        repairs["bbox_clamped"] += 1
    return LayoutElement(category, bbox, text), ""


def clamp_bbox(value: JSONValue, width: int, height: int) -> tuple[tuple[int, int, int, int] | None, str]:
    """A box clamped into the image, with "bbox_clamped" if that was needed; or None and the drop reason.

    Clamped when at least half its area lies on the image, whatever the overshoot; else "bbox_outside".
    """
    if not isinstance(value, list) or len(value) != 4:
        return None, "bad_bbox"
    numbers: list[int] = []
    for number in value:
        # bool is an int subclass, and a JSON `true` is no coordinate; inf/nan cannot be rounded.
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return None, "bad_bbox"
        numbers.append(round(number))
    x1, y1, x2, y2 = numbers
    if x1 >= x2 or y1 >= y2:
        return None, "bad_bbox"
    box = (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))
    on_page = max(0, box[2] - box[0]) * max(0, box[3] - box[1])
    if on_page < _MIN_AREA_ON_PAGE * (x2 - x1) * (y2 - y1):
        return None, "bbox_outside"
    return box, "bbox_clamped" if box != (x1, y1, x2, y2) else ""


def without_loops(elements: list[LayoutElement], repairs: Counter[str]) -> list[LayoutElement]:
    """Remove generation loops and duplicates, keeping first occurrences in reading order.

    A (category, text) seen `_LOOP_MIN_COUNT` times or more is a loop: it is kept once and the rest count as
    `repetition_loop` (even when they are also exact copies, as a loop usually is). Below that, an exact
    copy counts as `duplicate`. A box already taken by a kept element is a loop that varies its text.
    Elements without text (Pictures, detect mode) never form a text loop: a page may hold many pictures.
    """
    counts: Counter[tuple[str, str | None]] = Counter(
        (element.category, element.text) for element in elements if element.text is not None
    )
    kept: list[LayoutElement] = []
    seen: set[LayoutElement] = set()
    seen_texts: set[tuple[str, str | None]] = set()
    seen_boxes: set[tuple[int, int, int, int]] = set()
    for element in elements:
        key = (element.category, element.text)
        if element.text is not None and counts[key] >= _LOOP_MIN_COUNT and key in seen_texts:
            repairs["repetition_loop"] += 1
        elif element in seen:
            repairs["duplicate"] += 1
        elif element.bbox in seen_boxes:
            repairs["repetition_loop"] += 1
        else:
            kept.append(element)
            seen.add(element)
            seen_texts.add(key)
            seen_boxes.add(element.bbox)
    return kept


def collapse_runaway(text: str) -> tuple[str, int]:
    """Cut each runaway repetition in `text` to its first occurrence; the text and how many runs were cut.

    A runaway is a unit of at least 10 characters repeated at least 10 times in a row (a looping table row,
    a line of dots). A unit shorter than 10 characters is taken as many times as needed to reach 10, so 200
    dots become 10. What followed the run, including a partial last repetition, is kept.
    """
    if len(text) < _RUNAWAY_MIN_UNIT * _RUNAWAY_MIN_REPEATS:
        return text, 0
    reversed_text = text[::-1]  # backward comparisons become forward ones on the reversed text
    pieces: list[str] = []
    done = 0  # text[:done] has been copied into pieces (or collapsed)
    runs = 0
    anchor = 0
    while anchor + _RUNAWAY_MIN_UNIT <= len(text):
        run = _runaway_at(text, reversed_text, anchor, done)
        if run is None:
            anchor += _RUNAWAY_ANCHOR_STRIDE
            continue
        start, end, period = run
        unit = period * math.ceil(_RUNAWAY_MIN_UNIT / period)
        pieces.append(text[done : start + unit + (end - start) % period])
        done = anchor = end
        runs += 1
    pieces.append(text[done:])
    return "".join(pieces), runs


def _runaway_at(text: str, reversed_text: str, anchor: int, floor: int) -> tuple[int, int, int] | None:
    """The qualifying periodic run through `anchor` (start, end, period), not reaching back before `floor`."""
    window = text[anchor : anchor + _RUNAWAY_MIN_UNIT]
    limit = min(len(text), anchor + _RUNAWAY_MAX_UNIT + _RUNAWAY_MIN_UNIT)
    found = text.find(window, anchor + 1, limit)
    for _ in range(_RUNAWAY_MAX_TRIES):
        if found < 0:
            return None
        period = found - anchor
        # Period `period` holds at j when text[j] == text[j + period]; measure that stretch both ways.
        ahead = _common_prefix(text, anchor, found, len(text) - found)
        size = len(text)
        behind = _common_prefix(reversed_text, size - found, size - anchor, anchor - floor)
        start, end = anchor - behind, found + ahead
        unit = period * math.ceil(_RUNAWAY_MIN_UNIT / period)
        if end - start >= unit * _RUNAWAY_MIN_REPEATS:
            return start, end, period
        found = text.find(window, found + 1, limit)
    return None


def _common_prefix(text: str, i: int, j: int, limit: int) -> int:
    """How many characters text[i:] and text[j:] share, up to `limit`, by doubling then halving slices."""
    matched, step = 0, 16
    while matched < limit:
        size = min(step, limit - matched)
        if text[i + matched : i + matched + size] != text[j + matched : j + matched + size]:
            while size > 1:  # the mismatch is inside this slice: halve until it is found
                half = size // 2
                if text[i + matched : i + matched + half] == text[j + matched : j + matched + half]:
                    matched += half
                    size -= half
                else:
                    size = half
            return matched
        matched += size
        step *= 2
    return limit
