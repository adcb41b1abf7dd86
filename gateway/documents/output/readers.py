"""One entry point for every model's answer: the reader its config names, and boxes mapped to the page.

`model_configs/<model>.yaml` names a reader per prompt (`output_reader`, `prompt_readers`; registry.ReaderName).
Box readers return elements in the answer's coordinate space, which `to_page` maps to the client's pixels:
model-input pixels through the page geometry, or a 0..grid normalised scale (DeepSeek 999, LightOnOCR 1000)
first onto the image the model saw, then the same way. Nothing here knows a model by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from gateway.documents.images.geometry import Box, PageGeometry
from gateway.documents.output.box_readers import (
    Item,
    build_elements,
    grounding_tag_items,
    marker_block_items,
    quad_line_items,
)
from gateway.documents.output.layout import LayoutElement, LayoutParse, parse_layout_output
from gateway.documents.output.markdown import plain_markdown
from gateway.documents.output.otsl import replace_otsl_tables

_ITEM_READERS: dict[str, Callable[[str, Counter[str]], Iterator[Item]]] = {
    "grounding_tags": grounding_tag_items,
    "marker_blocks": marker_block_items,
    "quad_lines": quad_line_items,
}


def strip_markers(raw: str, markers: tuple[str, ...]) -> str:
    """The answer without the special tokens the server left in it (skip_special_tokens=false)."""
    for marker in markers:
        raw = raw.replace(marker, "")
    return raw


def read_markdown(raw: str) -> str:
    """A Markdown answer: OTSL tables as HTML, trimmed, runaway repetition cut."""
    return plain_markdown(replace_otsl_tables(raw))


def read_boxes(
    reader: str, raw: str, *, space: tuple[int, int], with_text: bool, labels: Mapping[str, str]
) -> LayoutParse:
    """Elements from a box reader's answer, in `space` = (width, height) of its coordinates."""
    width, height = space
    if reader == "dots_layout_json":
        return parse_layout_output(raw, width=width, height=height, with_text=with_text)
    if reader == "dots_web_json":
        return parse_layout_output(raw, width=width, height=height, with_text=with_text, any_category=True)
    items = _ITEM_READERS.get(reader)
    if items is None:
        raise ValueError(f"{reader!r} is not a box reader")
    repairs: Counter[str] = Counter()
    return build_elements(items(raw, repairs), repairs, width=width, height=height, labels=labels, with_text=with_text)


def answer_space(geometry: PageGeometry, grid: int | None) -> tuple[int, int]:
    """The coordinate space of the answer's boxes: the model input's pixels, or the normalised grid."""
    return geometry.model if grid is None else (grid, grid)


def to_page(elements: list[LayoutElement], geometry: PageGeometry, grid: int | None) -> list[LayoutElement]:
    """Elements with their boxes in the client's (original-image) pixels."""
    if grid is None:
        return [LayoutElement(e.category, geometry.to_original(e.bbox), e.text) for e in elements]
    onto_input = PageGeometry(geometry.model, (grid, grid))  # grid units -> pixels of the image the model saw
    return [LayoutElement(e.category, geometry.to_original(onto_input.to_original(e.bbox)), e.text) for e in elements]


__all__ = ["Box", "answer_space", "read_boxes", "read_markdown", "strip_markers", "to_page"]
