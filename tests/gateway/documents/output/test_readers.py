"""Every reader on answers in its model's documented format (tests/data/model_outputs/) and on broken ones.

Boxes come back in the client's pixels: from a 0-999 grid (DeepSeek), a 0-1000 grid (LightOnOCR) or
model-input pixels (dots.mocr), whatever the page's size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.documents.images.geometry import PageGeometry
from gateway.documents.output.layout import LayoutElement
from gateway.documents.output.markdown import layout_markdown
from gateway.documents.output.readers import answer_space, read_boxes, read_markdown, strip_markers, to_page
from gateway.models.registry import load_registry
from gateway.settings import PROJECT_ROOT

DATA = Path(__file__).resolve().parents[3] / "data" / "model_outputs"
REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def _read(
    model: str, file: str, geometry: PageGeometry, key: str = "layout_all"
) -> tuple[list[LayoutElement], dict[str, dict[str, int]], str]:
    config = REGISTRY[model]
    raw = strip_markers((DATA / file).read_text(encoding="utf-8"), tuple(config.strip_markers))
    parsed = read_boxes(
        config.reader(key),  # type: ignore[arg-type]
        raw,
        space=answer_space(geometry, config.box_grid),
        with_text=key != "layout_detect",
        labels=config.box_labels,
    )
    elements = to_page(parsed.elements, geometry, config.box_grid)
    return elements, {"repairs": parsed.repairs, "dropped": parsed.dropped}, parsed.status


# --- DeepSeek-OCR-2: grounding tags on a 0-999 grid ------------------------------------------------------------


def test_deepseek_blocks_map_from_the_999_grid_to_the_original_page() -> None:
    geometry = PageGeometry((1998, 999), (1998, 999))  # sent unresampled: factor 1
    elements, counts, status = _read("deepseek-ocr-2", "deepseek_grounding_page.txt", geometry)
    assert status == "ok", counts
    assert [e.category for e in elements] == [
        "Title", "Text", "Picture", "image_caption", "Table", "Formula", "Page-footer",
    ]  # fmt: skip
    assert elements[0] == LayoutElement("Title", (240, 40, 1760, 80), "# Quarterly Report")
    assert elements[2].text is None  # a picture's block carries no text
    assert elements[4].bbox == (200, 560, 1800, 800)  # two boxes in one <|det|>: their hull
    assert elements[-1].text == "Page 3"  # the end-of-sentence token is gone
    markdown = layout_markdown(elements, skip_headers_footers=True)
    assert "Page 3" not in markdown
    assert "$$\nr = \\frac{R_t}{R_{t-1}} - 1\n$$" in markdown
    assert "<table><tr><td>Month</td>" in markdown


def test_deepseek_boxes_follow_a_downscaled_page() -> None:
    # The page was 4000x2000 and went out at 2000x1000: grid -> sent image -> original.
    geometry = PageGeometry((4000, 2000), (2000, 1000))
    elements, _, _ = _read("deepseek-ocr-2", "deepseek_grounding_page.txt", geometry)
    assert elements[0].bbox == (480, 80, 3524, 160)


def test_a_deepseek_answer_cut_inside_a_tag_keeps_what_came_before() -> None:
    geometry = PageGeometry((999, 999), (999, 999))
    elements, counts, status = _read("deepseek-ocr-2", "deepseek_grounding_cut.txt", geometry)
    assert status == "repaired"
    assert [e.text for e in elements] == [
        "# Minutes",
        "The meeting opened at nine.",
    ]  # the box mostly below the page is dropped with its reason; the cut tag is a repair
    assert counts == {"repairs": {"truncated_tail": 1}, "dropped": {"bbox_outside": 1}}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no tags at all, just prose",
        "<|ref|>text<|/ref|><|det|>[[1, 2]]<|/det|>a box of two numbers",
        "<|ref|>text<|/ref|><|det|>__import__('os')<|/det|>never evaluated",
    ],
)
def test_broken_deepseek_answers_are_invalid_never_a_crash(raw: str) -> None:
    parsed = read_boxes("grounding_tags", raw, space=(999, 999), with_text=True, labels={})
    assert parsed.status == "invalid"
    assert parsed.elements == []


# --- LightOnOCR-3: marker blocks on a 0-1000 grid ---------------------------------------------------------------


def test_lightonocr_blocks_and_their_categories() -> None:
    geometry = PageGeometry((1000, 1400), (980, 1372))
    elements, counts, status = _read("lightonocr", "lightonocr_grounding_page.txt", geometry)
    assert status == "ok", counts
    assert [e.category for e in elements] == [
        "Page-header", "Title", "Text", "Text", "Table", "Picture", "Formula", "Page-footer",
    ]  # fmt: skip
    assert elements[1].bbox == (100, 84, 900, 154)
    assert elements[3].text == "into the second column, where it ends."  # `text+` reads as its label
    assert elements[5].text is None
    markdown = layout_markdown(elements, skip_headers_footers=True)
    assert "ACME" not in markdown
    assert "![Picture](#bbox=100,1092,480,1316)" in markdown


def test_a_marker_with_no_text_and_garbage_between_markers() -> None:
    raw = "junk before ![text](10,10,200,200)\n![text](5000,5000,6000,6000) off the page\n![](1,2,3,4) no label"
    parsed = read_boxes("marker_blocks", raw, space=(1000, 1000), with_text=True, labels={})
    assert [e.bbox for e in parsed.elements] == [(10, 10, 200, 200)]
    assert parsed.dropped == {"bbox_outside": 1}


# --- dots.mocr: scene spotting quads, web layout ---------------------------------------------------------------


def test_dots_mocr_scene_lines_become_text_elements_in_original_pixels() -> None:
    geometry = PageGeometry((2000, 1000), (1000, 500))
    elements, counts, status = _read("dots-mocr", "dots_mocr_scene.txt", geometry, key="layout_scene")
    assert status == "repaired"
    assert elements == [
        LayoutElement("text", (200, 112, 796, 240), "OPEN 24 HOURS"),
        LayoutElement("text", (300, 600, 700, 680), "Main Street"),
    ]
    assert counts == {"repairs": {"unreadable_line": 1}, "dropped": {"bbox_outside": 1}}


def test_dots_mocr_web_layout_keeps_categories_outside_the_document_set() -> None:
    raw = '[{"bbox": [0, 0, 500, 40], "category": "Navigation", "text": "Home | About"}]'
    parsed = read_boxes("dots_web_json", raw, space=(1000, 800), with_text=True, labels={})
    assert parsed.elements == [LayoutElement("Navigation", (0, 0, 500, 40), "Home | About")]
    strict = read_boxes("dots_layout_json", raw, space=(1000, 800), with_text=True, labels={})
    assert strict.dropped == {"unknown_category": 1}


# --- Markdown answers: HTML tables (GLM-OCR), OTSL (PaddleOCR-VL) ---------------------------------------------


def test_glm_ocr_html_table_passes_through() -> None:
    raw = (DATA / "glm_ocr_table.md").read_text(encoding="utf-8")
    assert read_markdown(raw) == raw.strip()


def test_paddleocr_otsl_table_becomes_html_with_spans() -> None:
    raw = (DATA / "paddleocr_otsl_table.txt").read_text(encoding="utf-8")
    assert read_markdown(raw) == (
        "Table 2: results<table>"
        '<tr><td rowspan="2">Model</td><td colspan="2">Score</td></tr>'
        "<tr><td>dev</td><td>test</td></tr>"
        "<tr><td>a &lt; b</td><td>1.0</td><td>2.0</td></tr>"
        "<tr><td>Total</td><td></td><td>3.0</td></tr>"
        "</table>"
    )


def test_markdown_without_otsl_is_left_alone() -> None:
    assert read_markdown("  # Title\n\nA <b>bold</b> claim.  ") == "# Title\n\nA <b>bold</b> claim."
