"""Layout boxes drawn over a page, client-side, from the JSON answer.

Drawn here rather than asked of the gateway (`format=png`) so that one layout call gives the JSON, the Markdown
and the picture, and so that selecting an element can highlight its box without calling the model again.
Colours are dots.ocr's per-category palette (as the gateway's own overlay uses), so pictures look the same
whichever way they were made. Boxes come in the page's pixels as the gateway reports them (`width`/`height`)
and are scaled to the image shown, which may be rendered at another DPI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont

Colour = tuple[int, int, int]

CATEGORY_COLOURS: Final[Mapping[str, Colour]] = {
    "Text": (0, 128, 0),
    "Picture": (255, 0, 255),
    "Caption": (255, 165, 0),
    "Section-header": (0, 200, 200),
    "Footnote": (0, 128, 0),
    "Formula": (128, 128, 128),
    "Table": (230, 120, 160),
    "Title": (255, 0, 0),
    "List-item": (0, 0, 255),
    "Page-header": (0, 128, 0),
    "Page-footer": (128, 0, 128),
}
DEFAULT_COLOUR: Final[Colour] = (0, 128, 0)  # a category the model invents
REGION_COLOUR: Final[Colour] = (255, 140, 0)  # the box of a region-OCR request
_FILL_ALPHA: Final = 64  # a light tint: the text under it stays readable
_SELECTED_ALPHA: Final = 140


def category_colour(category: str) -> Colour:
    return CATEGORY_COLOURS.get(category, DEFAULT_COLOUR)


def draw_page(
    image: Image.Image,
    page: Mapping[str, Any],
    *,
    selected: int | None = None,
    region: Sequence[float] | None = None,
) -> Image.Image:
    """A copy of `image` with the page's elements boxed, numbered in reading order, coloured by category.

    `selected` (an element's `index`) is drawn thicker and darker so the chosen row of the table shows where it
    is; `region` (x1, y1, x2, y2 in page pixels) outlines the area of a region-OCR request.
    """
    canvas = image.convert("RGB")
    page_width = float(page.get("width") or canvas.width)
    page_height = float(page.get("height") or canvas.height)
    sx, sy = canvas.width / page_width, canvas.height / page_height
    draw = ImageDraw.Draw(canvas, "RGBA")
    # Labels scale with the picture: a fixed 10 px font vanishes on a 2000 px page shown 600 px wide.
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 60)))
    outline = max(2, round(min(canvas.size) / 500))
    for element in page.get("elements") or []:
        bbox = element.get("bbox")
        if not isinstance(bbox, list | tuple) or len(bbox) != 4:
            continue
        x1, y1, x2, y2 = _scaled(bbox, sx, sy, canvas.size)
        if x2 <= x1 or y2 <= y1:
            continue
        colour = category_colour(str(element.get("category", "")))
        chosen = selected is not None and element.get("index") == selected
        draw.rectangle(
            (x1, y1, x2, y2),
            fill=(*colour, _SELECTED_ALPHA if chosen else _FILL_ALPHA),
            outline=(*colour, 255),
            width=outline * (3 if chosen else 1),
        )
        label = str(element.get("index", ""))
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tag_w, tag_h = right - left + 6, bottom - top + 6
        # Above the box where there is room (the gap between blocks), inside its top edge otherwise.
        tx, ty = x1, (y1 - tag_h if y1 >= tag_h else y1)
        draw.rectangle((tx, ty, tx + tag_w, ty + tag_h), fill=(*colour, 230))
        draw.text((tx + 3 - left, ty + 3 - top), label, fill=(255, 255, 255), font=font)
    if region is not None and len(region) == 4:
        draw.rectangle(_scaled(region, sx, sy, canvas.size), outline=(*REGION_COLOUR, 255), width=outline * 2)
    return canvas


def _scaled(bbox: Sequence[float], sx: float, sy: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box in the shown image's pixels, ordered and clamped so a box partly outside still shows."""
    x1, x2 = sorted((float(bbox[0]) * sx, float(bbox[2]) * sx))
    y1, y2 = sorted((float(bbox[1]) * sy, float(bbox[3]) * sy))
    width, height = size
    return max(0.0, x1), max(0.0, y1), min(float(width - 1), x2), min(float(height - 1), y2)


def legend_html(categories: Sequence[str]) -> str:
    """Coloured chips for the categories on the page, so a reader can tell a Caption from a Table at a glance."""
    chips = []
    for category in dict.fromkeys(categories):
        r, g, b = category_colour(category)
        chips.append(
            f'<span style="display:inline-block;margin:2px 6px 2px 0;padding:1px 6px;border-radius:4px;'
            f'background:rgba({r},{g},{b},0.25);border:2px solid rgb({r},{g},{b})">{_escape(category)}</span>'
        )
    return "".join(chips)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
