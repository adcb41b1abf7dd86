"""The layout overlay: a PNG of the page's own size, each box tinted and outlined in its category's colour."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gateway.documents.output.overlay import (
    CATEGORY_COLOURS,
    DEFAULT_COLOUR,
    FILL_ALPHA,
    OUTLINE_WIDTH,
    category_colour,
    draw_layout,
)

WHITE = (255, 255, 255)


def rendered(image: Image.Image, boxes: list[tuple[int, str, tuple[int, int, int, int]]]) -> Image.Image:
    png = draw_layout(image, boxes)
    overlay = Image.open(io.BytesIO(png))
    assert overlay.format == "PNG"
    overlay.load()
    return overlay


def tint(colour: tuple[int, ...], under: tuple[int, ...] = WHITE) -> tuple[int, ...]:
    """`colour` at FILL_ALPHA over `under`, as PIL blends it (to within rounding)."""
    return tuple(round(c * FILL_ALPHA / 255 + u * (255 - FILL_ALPHA) / 255) for c, u in zip(colour, under, strict=True))


def near(actual: object, expected: tuple[int, ...], tolerance: int = 1) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_dots_ocr_colours_and_the_fallback() -> None:
    assert category_colour("Table") == (255, 192, 203)
    assert category_colour("Title") == (255, 0, 0)
    assert category_colour("Page-footer") == (128, 0, 128)
    assert category_colour("Something-new") == DEFAULT_COLOUR == (0, 128, 0)
    assert len(CATEGORY_COLOURS) == 11


def test_overlay_is_a_png_of_the_original_size_and_leaves_the_page_untouched() -> None:
    page = Image.new("RGB", (400, 300), WHITE)
    overlay = rendered(page, [(0, "Text", (50, 60, 200, 160))])
    assert (overlay.mode, overlay.size) == ("RGB", (400, 300))
    assert page.getpixel((100, 100)) == WHITE


@pytest.mark.parametrize("category", ["Table", "Picture", "Title", "Formula", "Unknown-thing"])
def test_inside_a_box_the_page_is_tinted_with_its_category_colour(category: str) -> None:
    overlay = rendered(Image.new("RGB", (400, 300), WHITE), [(0, category, (100, 100, 300, 250))])
    colour = category_colour(category)
    assert near(overlay.getpixel((200, 200)), tint(colour))  # interior: ~30 % colour over white
    assert overlay.getpixel((200, 249)) == colour  # the outline, OUTLINE_WIDTH px inside the box edge
    assert overlay.getpixel((200, 249 - OUTLINE_WIDTH)) != colour
    assert overlay.getpixel((200, 260)) == WHITE  # outside the box
    assert overlay.getpixel((50, 50)) == WHITE


def test_overlapping_boxes_blend_rather_than_hide_each_other() -> None:
    boxes = [(0, "Title", (0, 0, 200, 200)), (1, "List-item", (100, 100, 300, 300))]
    overlay = rendered(Image.new("RGB", (400, 400), WHITE), boxes)
    assert near(overlay.getpixel((150, 150)), tint((0, 0, 255), under=tint((255, 0, 0))), tolerance=2)


def test_labels_stay_inside_the_image_at_its_edges() -> None:
    """A box at the top gets its label inside, under its top edge; one at the right edge gets it shifted left.
    The label's background is the opaque category colour, where the box alone would only be tinted."""
    page = Image.new("RGB", (300, 200), WHITE)
    overlay = rendered(page, [(0, "Title", (0, 0, 120, 80)), (1, "List-item", (290, 120, 300, 180))])
    red, blue = category_colour("Title"), category_colour("List-item")
    inside_top_edge = [overlay.getpixel((x, y)) for x in range(OUTLINE_WIDTH, 60) for y in range(OUTLINE_WIDTH, 10)]
    assert inside_top_edge.count(red) > 100
    # Right-edge box: the tag sits above it (y < 120), pulled left of x = 290 so its text fits.
    assert blue in [overlay.getpixel((x, 115)) for x in range(200, 290)]


def test_boxes_outside_or_upside_down_are_clamped_not_fatal() -> None:
    boxes = [(0, "Text", (350, 250, -20, 120)), (1, "Caption", (-50, -50, -10, -10)), (2, "Table", (5, 5, 5, 5))]
    overlay = rendered(Image.new("RGB", (300, 200), WHITE), boxes)
    assert overlay.size == (300, 200)
    assert near(overlay.getpixel((150, 160)), tint(category_colour("Text")))
    assert category_colour("Caption") not in [overlay.getpixel((x, y)) for x in range(40) for y in range(40)]
