"""Layout boxes drawn over the page, for people checking what the model found (dots-ocr.md §4).

Each box is tinted in its category's colour at ~30 % opacity with a 2 px outline, and labelled
"{index} {category}" on a filled tag at its top-left corner: above the box when there is room (the gap between
blocks, so the tag hides no text), inside it at the top edge of the page, and shifted left at the right edge,
so every tag stays inside the image. Colours are dots.ocr's, so overlays look like the ones its users know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from gateway.documents.images.prepare import Box, encode_png

Colour = tuple[int, int, int]

CATEGORY_COLOURS: Final[Mapping[str, Colour]] = {
    "Text": (0, 128, 0),
    "Picture": (255, 0, 255),
    "Caption": (255, 165, 0),
    "Section-header": (0, 255, 255),
    "Footnote": (0, 128, 0),
    "Formula": (128, 128, 128),
    "Table": (255, 192, 203),
    "Title": (255, 0, 0),
    "List-item": (0, 0, 255),
    "Page-header": (0, 128, 0),
    "Page-footer": (128, 0, 128),
}
DEFAULT_COLOUR: Final[Colour] = (0, 128, 0)  # any category the model invents

FILL_ALPHA: Final = 77  # 30 % of 255: the text under the tint stays readable
OUTLINE_WIDTH: Final = 2
_LABEL_PADDING: Final = 3


def category_colour(category: str) -> Colour:
    """The RGB colour a category is drawn in."""
    return CATEGORY_COLOURS.get(category, DEFAULT_COLOUR)


def draw_layout(image: Image.Image, boxes: Sequence[tuple[int, str, Box]]) -> bytes:
    """The page with its layout boxes drawn on, as PNG bytes of the page's own size.

    `boxes` are (reading-order index, category, bbox in ORIGINAL pixels). Coordinates are clamped to the page
    and x1/x2, y1/y2 put in order, so a box the model placed partly outside still shows where it points; a box
    wholly outside is left out. The image passed in is not modified.
    """
    canvas = image.convert("RGB")  # always a copy
    width, height = canvas.size
    # Drawing in RGBA mode on an RGB image alpha-blends each fill, so overlapping tints mix instead of hiding.
    draw = ImageDraw.Draw(canvas, "RGBA")
    font = ImageFont.load_default(size=_label_size(width, height))
    rectangles = [
        (index, category, rectangle)
        for index, category, bbox in boxes
        if (rectangle := _clamped(bbox, width, height)) is not None
    ]
    for _, category, rectangle in rectangles:
        colour = category_colour(category)
        draw.rectangle(rectangle, fill=(*colour, FILL_ALPHA), outline=colour, width=OUTLINE_WIDTH)
    # Labels after every tint, so a later box never tints over an earlier box's label.
    for index, category, rectangle in rectangles:
        _draw_label(draw, font, f"{index} {category}", rectangle, category_colour(category), (width, height))
    return encode_png(canvas)


def _label_size(width: int, height: int) -> int:
    """Font size in px: about 1/80 of the short side (21 px on a 1700x2250 page), at least 12 to stay legible."""
    return max(12, round(min(width, height) / 80))


def _clamped(bbox: Box, width: int, height: int) -> Box | None:
    """The box as inclusive pixel corners inside the page (ImageDraw rectangles include both ends), or None
    for a box entirely off the page, which has nothing to show.
    """
    x1, y1, x2, y2 = bbox
    left, right = sorted((x1, x2))
    top, bottom = sorted((y1, y2))
    # A box's right/bottom edge is the first pixel outside it; the drawn rectangle ends one pixel before.
    right, bottom = max(right - 1, left), max(bottom - 1, top)
    if right < 0 or bottom < 0 or left >= width or top >= height:
        return None
    return (
        min(max(left, 0), width - 1),
        min(max(top, 0), height - 1),
        min(max(right, 0), width - 1),
        min(max(bottom, 0), height - 1),
    )


def _draw_label(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    text: str,
    rectangle: Box,
    colour: Colour,
    page: tuple[int, int],
) -> None:
    """A tag in the box's colour with the text in black or white, whichever contrasts more."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tag_width = math.ceil(right - left) + 2 * _LABEL_PADDING
    tag_height = math.ceil(bottom - top) + 2 * _LABEL_PADDING
    x, y = rectangle[0], rectangle[1] - tag_height
    if y < 0:  # no room above: inside the box, under its top edge
        y = rectangle[1]
    x = max(0, min(x, page[0] - tag_width))
    y = max(0, min(y, page[1] - tag_height))
    draw.rectangle((x, y, x + tag_width - 1, y + tag_height - 1), fill=colour)
    # ITU-R BT.601 luma: light colours (cyan, pink, orange) get black text, dark ones white.
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
    draw.text((x + _LABEL_PADDING - left, y + _LABEL_PADDING - top), text, fill=ink, font=font)
