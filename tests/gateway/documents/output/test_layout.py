"""What `parse_layout_output` makes of dots.ocr's layout answers: clean, cut, looping, wrapped or not JSON at all.

Pages are 1288x1680 model-input pixels (dots.ocr's input for its demo_image1). A box running past the edge is
clamped when at least half of its area lies on the page, and dropped (`bbox_outside`) when most of it lies off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.documents.output.json_salvage import read_json
from gateway.documents.output.layout import (
    CATEGORIES,
    LayoutElement,
    LayoutParse,
    collapse_runaway,
    parse_layout_output,
)

CORPUS = Path(__file__).resolve().parents[3] / "data" / "dots_outputs"
W, H = 1288, 1680

CLEAN_RAW = (CORPUS / "clean_page.json").read_text(encoding="utf-8")
CLEAN_ELEMENTS = [
    LayoutElement("Page-header", (120, 60, 620, 92), "Journal of Simulated Results, Vol. 12"),
    LayoutElement("Title", (150, 130, 1140, 210), "# Odds Ratios for Lymphoma by Exposure"),
    LayoutElement("Section-header", (120, 250, 520, 290), "## 1. Introduction"),
    LayoutElement(
        "Text",
        (120, 300, 1168, 520),
        'Exposure was associated with lymphoma ($p < 0.05$) in both cohorts, see "Table II".',
    ),
    LayoutElement("Formula", (300, 540, 990, 610), "$$\\mathrm{OR} = \\frac{a d}{b c}$$"),
    LayoutElement(
        "Table",
        (120, 640, 1168, 980),
        "<table><thead><tr><th>Exposure</th><th>OR</th></tr></thead><tbody><tr><td>None</td><td>1.00</td></tr>"
        "<tr><td>Low</td><td>1.21</td></tr></tbody></table>",
    ),
    LayoutElement("Caption", (120, 990, 800, 1030), "TABLE II: Odds ratios by exposure."),
    LayoutElement("Picture", (150, 1060, 700, 1400), None),
    LayoutElement("List-item", (120, 1420, 1168, 1470), "- Exposure was self-reported."),
    LayoutElement("Footnote", (120, 1540, 900, 1580), "¹ Adjusted for age and sex."),
    LayoutElement("Page-footer", (600, 1610, 690, 1640), "2763"),
]


def parse(raw: str, *, with_text: bool = True) -> LayoutParse:
    return parse_layout_output(raw, width=W, height=H, with_text=with_text)


def cut_after(text: str, marker: str, extra: int = 0) -> str:
    """The answer as if generation stopped `extra` characters after the first `marker`."""
    return text[: text.index(marker) + len(marker) + extra]


def obj(bbox: list[Any], category: str = "Text", text: str | None = "t") -> str:
    fields: dict[str, Any] = {"bbox": bbox, "category": category}
    if text is not None:
        fields["text"] = text
    return json.dumps(fields)


def texts(elements: list[LayoutElement]) -> str:
    return "\n\n".join(element.text for element in elements if element.text)


# --- Clean answers ---------------------------------------------------------------------------------------------


def test_a_clean_answer_is_read_in_reading_order() -> None:
    result = parse(CLEAN_RAW)
    assert result == LayoutParse(CLEAN_ELEMENTS, "ok", {}, {}, texts(CLEAN_ELEMENTS))


def test_a_json_fence_is_stripped_and_counts_as_nothing() -> None:
    assert parse(f"```json\n{CLEAN_RAW}\n```\n") == parse(CLEAN_RAW)


def test_pretty_printed_json_with_trailing_garbage_is_ok() -> None:
    raw = json.dumps(json.loads(CLEAN_RAW), indent=2) + "\n]<|endoftext|> and some chatter"
    assert parse(raw) == parse(CLEAN_RAW)


def test_an_empty_list_is_a_blank_page() -> None:
    assert parse("[]") == LayoutParse([], "ok", {}, {}, "")
    assert parse(" [ ]\n") == LayoutParse([], "ok", {}, {}, "")


def test_a_detect_mode_answer_has_no_texts() -> None:
    result = parse((CORPUS / "detect_page.json").read_text(encoding="utf-8"), with_text=False)
    expected = [LayoutElement(element.category, element.bbox, None) for element in CLEAN_ELEMENTS]
    assert result == LayoutParse(expected, "ok", {}, {}, "")


def test_detect_mode_ignores_texts_the_model_added_anyway() -> None:
    result = parse(CLEAN_RAW, with_text=False)
    assert result.elements == [LayoutElement(element.category, element.bbox, None) for element in CLEAN_ELEMENTS]
    assert (result.status, result.repairs, result.dropped, result.cleaned_text) == ("ok", {}, {}, "")


def test_float_coordinates_are_rounded() -> None:
    result = parse(f"[{obj([10.0, 20.4, 99.6, 50.5])}]")
    assert result == LayoutParse([LayoutElement("Text", (10, 20, 100, 50), "t")], "ok", {}, {}, "t")


# --- Truncation ------------------------------------------------------------------------------------------------


def test_truncated_mid_string_keeps_the_complete_elements() -> None:
    result = parse(cut_after(CLEAN_RAW, '"TABLE II: Odds'))
    assert result == LayoutParse(CLEAN_ELEMENTS[:6], "repaired", {"truncated_tail": 1}, {}, texts(CLEAN_ELEMENTS[:6]))


def test_truncated_mid_number_keeps_the_complete_elements() -> None:
    result = parse(cut_after(CLEAN_RAW, '{"bbox": [150, 10'))
    assert result == LayoutParse(CLEAN_ELEMENTS[:7], "repaired", {"truncated_tail": 1}, {}, texts(CLEAN_ELEMENTS[:7]))


def test_truncated_mid_object_after_several_complete_ones() -> None:
    result = parse(cut_after(CLEAN_RAW, '"category": "List-item"'))
    assert result == LayoutParse(CLEAN_ELEMENTS[:8], "repaired", {"truncated_tail": 1}, {}, texts(CLEAN_ELEMENTS[:8]))


def test_a_missing_closing_bracket_loses_nothing() -> None:
    result = parse(CLEAN_RAW[:-1])
    assert result == LayoutParse(CLEAN_ELEMENTS, "repaired", {"truncated_tail": 1}, {}, texts(CLEAN_ELEMENTS))


def test_an_answer_cut_inside_its_first_element_is_invalid() -> None:
    assert parse(cut_after(CLEAN_RAW, '"Journal of')) == LayoutParse([], "invalid", {"truncated_tail": 1}, {}, "")
    assert parse("[") == LayoutParse([], "invalid", {"truncated_tail": 1}, {}, "")


def test_a_syntax_error_ends_the_readable_part_like_a_cut() -> None:
    raw = f"[{obj([1, 2, 30, 40], text='a')}, {obj([1, 50, 30, 60], text='b')} oops, {obj([1, 70, 30, 80])}]"
    result = parse(raw)
    assert result.elements == [LayoutElement("Text", (1, 2, 30, 40), "a"), LayoutElement("Text", (1, 50, 30, 60), "b")]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {"truncated_tail": 1}, {})


# --- Separators, duplicates and loops --------------------------------------------------------------------------


def test_missing_commas_between_objects_are_assumed() -> None:
    a, b, c = obj([1, 2, 30, 40], text="a"), obj([1, 50, 30, 60], text="b"), obj([1, 70, 30, 80], text="c")
    result = parse(f"[{a}{b}\n{c}]")
    assert result == LayoutParse(
        [
            LayoutElement("Text", (1, 2, 30, 40), "a"),
            LayoutElement("Text", (1, 50, 30, 60), "b"),
            LayoutElement("Text", (1, 70, 30, 80), "c"),
        ],
        "repaired",
        {"missing_comma": 2},
        {},
        "a\n\nb\n\nc",
    )


def test_no_comma_is_assumed_before_garbage() -> None:
    result = parse(f"[{obj([1, 2, 30, 40])}\nnote: that is all")
    assert result == LayoutParse(
        [LayoutElement("Text", (1, 2, 30, 40), "t")], "repaired", {"truncated_tail": 1}, {}, "t"
    )


def test_a_missing_comma_inside_an_object_is_assumed() -> None:
    result = parse('[{"bbox": [1, 2, 30, 40] "category": "Title", "text": "T"}]')
    assert result == LayoutParse(
        [LayoutElement("Title", (1, 2, 30, 40), "T")], "repaired", {"missing_comma": 1}, {}, "T"
    )


def test_a_looping_table_row_is_cut_to_its_first_occurrence() -> None:
    result = parse((CORPUS / "looping_table.json").read_text(encoding="utf-8"))
    table = (
        "<table><thead><tr><th>Site</th><th>n</th></tr></thead><tbody><tr><td>Lung</td><td>12</td></tr>"
        "<tr><td>Total</td><td>0</td></tr></tbody></table>"
    )
    expected = [
        LayoutElement("Caption", (120, 60, 1168, 120), "TABLE III: Counts per site."),
        LayoutElement("Table", (120, 130, 1168, 1500), table),
        LayoutElement("Page-footer", (600, 1610, 690, 1640), "2764"),
    ]
    assert result == LayoutParse(expected, "repaired", {"repetition_loop": 1}, {}, texts(expected))


def test_the_same_element_eight_times_is_a_loop_kept_once() -> None:
    looping = obj([100, 200, 900, 260], text="Results are shown below.")
    raw = "[" + ", ".join([looping] * 8 + [obj([100, 300, 900, 360], text="Next.")]) + "]"
    result = parse(raw)
    assert result == LayoutParse(
        [
            LayoutElement("Text", (100, 200, 900, 260), "Results are shown below."),
            LayoutElement("Text", (100, 300, 900, 360), "Next."),
        ],
        "repaired",
        {"repetition_loop": 7},
        {},
        "Results are shown below.\n\nNext.",
    )


def test_a_few_exact_copies_are_duplicates() -> None:
    first, second = obj([1, 2, 30, 40], text="a"), obj([1, 50, 30, 60], text="b")
    result = parse(f"[{first}, {second}, {first}, {first}]")
    assert result.elements == [LayoutElement("Text", (1, 2, 30, 40), "a"), LayoutElement("Text", (1, 50, 30, 60), "b")]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {"duplicate": 2}, {})


def test_a_text_repeated_five_times_in_new_boxes_is_a_loop() -> None:
    raw = "[" + ", ".join(obj([10, 10 + 50 * i, 500, 40 + 50 * i], text="Lorem ipsum") for i in range(5)) + "]"
    result = parse(raw)
    assert result.elements == [LayoutElement("Text", (10, 10, 500, 40), "Lorem ipsum")]
    assert result.repairs == {"repetition_loop": 4}


def test_the_same_text_four_times_is_a_page_not_a_loop() -> None:
    raw = "[" + ", ".join(obj([10, 10 + 50 * i, 500, 40 + 50 * i], text="Lorem ipsum") for i in range(4)) + "]"
    result = parse(raw)
    assert len(result.elements) == 4
    assert (result.status, result.repairs) == ("ok", {})


def test_a_box_already_taken_is_a_loop_even_with_new_text() -> None:
    raw = f"[{obj([1, 2, 30, 40], text='row 1')}, {obj([1, 2, 30, 40], 'Table', text='row 2')}]"
    result = parse(raw)
    assert result.elements == [LayoutElement("Text", (1, 2, 30, 40), "row 1")]
    assert result.repairs == {"repetition_loop": 1}


def test_many_pictures_are_not_a_loop() -> None:
    raw = "[" + ", ".join(obj([10, 10 + 50 * i, 500, 40 + 50 * i], "Picture", None) for i in range(6)) + "]"
    result = parse(raw)
    assert len(result.elements) == 6
    assert result.status == "ok"


def test_a_runaway_line_of_dots_is_cut() -> None:
    result = parse(f"[{obj([1, 2, 300, 40], text='Contents ' + '.' * 300 + ' 7')}]")
    assert result.elements == [LayoutElement("Text", (1, 2, 300, 40), "Contents .......... 7")]
    assert result.repairs == {"repetition_loop": 1}


# --- Containers ------------------------------------------------------------------------------------------------


def test_a_single_object_is_wrapped() -> None:
    result = parse(obj([1, 2, 30, 40], "Title", "Only a title"))
    expected = [LayoutElement("Title", (1, 2, 30, 40), "Only a title")]
    assert result == LayoutParse(expected, "repaired", {"wrapped_object": 1}, {}, "Only a title")


def test_a_list_inside_an_object_is_unwrapped() -> None:
    result = parse('{"layout": ' + CLEAN_RAW + "}")
    assert result == LayoutParse(CLEAN_ELEMENTS, "repaired", {"unwrapped_container": 1}, {}, texts(CLEAN_ELEMENTS))


def test_an_unwrapped_empty_list_is_still_a_blank_page() -> None:
    assert parse('{"layout": []}') == LayoutParse([], "repaired", {"unwrapped_container": 1}, {}, "")


def test_a_cut_wrapper_keeps_its_complete_elements() -> None:
    result = parse(cut_after('{"layout": ' + CLEAN_RAW + "}", '"TABLE II: Odds'))
    assert result.elements == CLEAN_ELEMENTS[:6]
    assert result.repairs == {"unwrapped_container": 1, "truncated_tail": 1}


def test_prose_is_invalid_and_kept_as_text() -> None:
    raw = "\n  I cannot see any layout elements in this image.  \n"
    assert parse(raw) == LayoutParse([], "invalid", {}, {}, "I cannot see any layout elements in this image.")


def test_non_objects_in_the_list_are_dropped() -> None:
    result = parse(f'[1, "Text", null, [1, 2, 3, 4], {obj([1, 2, 30, 40])}]')
    assert result.elements == [LayoutElement("Text", (1, 2, 30, 40), "t")]
    assert (result.status, result.dropped) == ("repaired", {"not_an_object": 4})


# --- Validation ------------------------------------------------------------------------------------------------


def test_three_number_boxes_are_dropped() -> None:
    result = parse(f"[{obj([1, 2, 30])}, {obj([1, 50, 30, 60], text='kept')}]")
    assert result.elements == [LayoutElement("Text", (1, 50, 30, 60), "kept")]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {}, {"bad_bbox": 1})


@pytest.mark.parametrize(
    "bbox",
    [[1, 2, 3], [1, 2, 3, 4, 5], ["1", "2", "30", "40"], [1, True, 30, 40], [1, None, 30, 40], "1,2,30,40", None],
)
def test_boxes_that_are_not_four_numbers_are_bad(bbox: Any) -> None:
    assert parse(f"[{obj(bbox)}]") == LayoutParse([], "invalid", {}, {"bad_bbox": 1}, "t")


@pytest.mark.parametrize("bbox", [[30, 2, 1, 40], [1, 40, 30, 2], [1, 2, 1, 40], [1, 2, 30, 2], [10.2, 2, 9.8, 40]])
def test_inverted_and_empty_boxes_are_bad(bbox: list[float]) -> None:
    assert parse(f"[{obj(bbox)}]").dropped == {"bad_bbox": 1}


def test_a_box_without_bbox_field_is_bad() -> None:
    assert parse('[{"category": "Text", "text": "t"}]').dropped == {"bad_bbox": 1}


def test_small_overshoots_are_clamped() -> None:
    raw = f"[{obj([-26, 0, W + 26, 40], text='a')}, {obj([0, H - 40, 10, H + 34], text='b')}, {obj([5, 5, 6, 6])}]"
    result = parse(raw)
    assert result.elements == [
        LayoutElement("Text", (0, 0, W, 40), "a"),
        LayoutElement("Text", (0, H - 40, 10, H), "b"),
        LayoutElement("Text", (5, 5, 6, 6), "t"),
    ]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {"bbox_clamped": 2}, {})


def test_a_box_wholly_off_the_page_is_outside() -> None:
    assert parse(f"[{obj([W, 10, W + 20, 40])}]").dropped == {"bbox_outside": 1}


@pytest.mark.parametrize("bbox", [[-27, 0, 10, 10], [W - 10, 0, W + 11, 10], [0, -35, 10, 10], [0, H - 5, 10, H + 6]])
def test_boxes_mostly_off_the_page_are_dropped(bbox: list[int]) -> None:
    assert parse(f"[{obj(bbox)}]") == LayoutParse([], "invalid", {}, {"bbox_outside": 1}, "t")


@pytest.mark.parametrize(
    ("bbox", "clamped"),
    [
        ([0, 0, W + 300, 10], (0, 0, W, 10)),  # a wide overshoot, 81 % on the page: far past the old 2 % slack
        ([-40, 100, 60, 200], (0, 100, 60, 200)),  # 60 % on the page
        ([W - 10, 0, W + 10, 10], (W - 10, 0, W, 10)),  # exactly half: kept
        ([100, H - 400, 300, H + 100], (100, H - 400, 300, H)),
    ],
)
def test_boxes_mostly_on_the_page_keep_their_text_clamped(bbox: list[int], clamped: tuple[int, ...]) -> None:
    result = parse(f"[{obj(bbox, text='kept words')}]")
    assert result.elements == [LayoutElement("Text", clamped, "kept words")]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {"bbox_clamped": 1}, {})


def test_normalized_0_1000_boxes_on_a_small_image_are_outside() -> None:
    result = parse_layout_output(f"[{obj([100, 100, 900, 950])}]", width=448, height=448, with_text=True)
    assert result.dropped == {"bbox_outside": 1}


def test_a_tiny_page_clamps_by_area_too() -> None:
    result = parse_layout_output(
        f"[{obj([-4, 0, 60, 60])}, {obj([0, 0, 60, 65])}, {obj([0, 40, 60, 100])}]", width=60, height=60, with_text=True
    )
    assert result.elements == [LayoutElement("Text", (0, 0, 60, 60), "t")]
    assert (result.repairs, result.dropped) == ({"bbox_clamped": 2, "duplicate": 1}, {"bbox_outside": 1})


def test_unknown_categories_are_dropped() -> None:
    raw = f"[{obj([1, 2, 30, 40], 'Other')}, {obj([1, 2, 30, 40], 'text')}, {obj([1, 50, 30, 60], 'Title', 'T')}]"
    result = parse(raw)
    assert result.elements == [LayoutElement("Title", (1, 50, 30, 60), "T")]
    assert (result.status, result.repairs, result.dropped) == ("repaired", {}, {"unknown_category": 2})


def test_text_on_a_picture_is_removed() -> None:
    result = parse(f"[{obj([1, 2, 30, 40], 'Picture', 'a chart')}]")
    assert result == LayoutParse(
        [LayoutElement("Picture", (1, 2, 30, 40), None)], "repaired", {"picture_text_removed": 1}, {}, ""
    )


@pytest.mark.parametrize("text_field", ["", ', "text": null', ', "text": 42', ', "text": ["a"]'])
def test_elements_without_a_text_string_are_dropped(text_field: str) -> None:
    result = parse(f'[{{"bbox": [1, 2, 30, 40], "category": "Caption"{text_field}}}]')
    assert result == LayoutParse([], "invalid", {}, {"missing_text": 1}, "")


def test_an_empty_text_string_is_a_text() -> None:
    assert parse(f"[{obj([1, 2, 30, 40], text='')}]").elements == [LayoutElement("Text", (1, 2, 30, 40), "")]


def test_cleaned_text_falls_back_to_texts_of_dropped_elements() -> None:
    # Every box is unusable, but the words are still the best a degraded page can offer.
    bad, outside, unknown = (
        obj([1, 2, 3], text="First."),
        obj([9000, 2, 9100, 40], text="First."),
        obj([0], "x", "Second."),
    )
    raw = f"[{bad}, {outside}, {unknown}]"
    result = parse(raw)
    assert result == LayoutParse(
        [], "invalid", {}, {"bad_bbox": 1, "bbox_outside": 1, "unknown_category": 1}, "First.\n\nSecond."
    )


def test_unescaped_latex_backslashes_are_kept() -> None:
    result = parse('[{"bbox": [1, 2, 30, 40], "category": "Formula", "text": "\\alpha + \\\\beta"}]')
    assert result.elements == [LayoutElement("Formula", (1, 2, 30, 40), "\\alpha + \\beta")]


# --- Runaway repetition ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "runs"),
    [
        ("x" * 99, "x" * 99, 0),  # 9.9 units of 10: not enough
        ("x" * 100, "x" * 10, 1),
        ("ab" * 60 + "!", "ababababab!", 1),
        ("<tr><td>1</td></tr>" * 9 + "end", "<tr><td>1</td></tr>" * 9 + "end", 0),
        ("<tr><td>1</td></tr>" * 10 + "end", "<tr><td>1</td></tr>end", 1),
        ("A" + "0123456789" * 12 + "B" + "." * 150, "A0123456789B..........", 2),
        ("row<br>" * 40 + "row<b end", "row<br>row<br>row<b end", 1),  # a partial last repetition stays
    ],
)
def test_collapse_runaway(text: str, expected: str, runs: int) -> None:
    assert collapse_runaway(text) == (expected, runs)


# --- Properties ------------------------------------------------------------------------------------------------

REPAIR_KINDS = {
    "truncated_tail",
    "missing_comma",
    "duplicate",
    "repetition_loop",
    "wrapped_object",
    "bbox_clamped",
    "picture_text_removed",
    "unwrapped_container",
}
DROP_REASONS = {"bad_bbox", "bbox_outside", "unknown_category", "missing_text", "not_an_object"}


def assert_well_formed(result: LayoutParse, width: int, height: int, with_text: bool) -> None:
    for element in result.elements:
        assert element.category in CATEGORIES
        assert len(element.bbox) == 4
        assert all(type(v) is int for v in element.bbox)
        x1, y1, x2, y2 = element.bbox
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        if with_text and element.category != "Picture":
            assert isinstance(element.text, str)
        else:
            assert element.text is None
    assert len({element.bbox for element in result.elements}) == len(result.elements)
    assert set(result.repairs) <= REPAIR_KINDS
    assert set(result.dropped) <= DROP_REASONS
    assert all(count > 0 for count in [*result.repairs.values(), *result.dropped.values()])
    if result.status == "invalid":
        assert result.elements == []
    else:
        assert (result.status == "ok") == (not result.repairs and not result.dropped)
    result.cleaned_text.encode("utf-8")  # no lone surrogate from a broken \u escape


JSONISH = st.text(alphabet='[]{}",:0123456789.-eE \n\\utrfalsn', max_size=200)
SIZES = st.integers(min_value=1, max_value=4000)


@settings(database=None, deadline=None, max_examples=300)
@given(raw=st.one_of(st.text(max_size=300), JSONISH), width=SIZES, height=SIZES, with_text=st.booleans())
def test_never_raises_on_any_text(raw: str, width: int, height: int, with_text: bool) -> None:
    assert_well_formed(
        parse_layout_output(raw, width=width, height=height, with_text=with_text), width, height, with_text
    )


@st.composite
def layout_answers(draw: st.DrawFn) -> tuple[list[dict[str, Any]], str, list[int]]:
    """A valid answer, its elements, and where each element's closing brace ends in the text."""
    count = draw(st.integers(min_value=0, max_value=8))
    elements: list[dict[str, Any]] = []
    for index in range(count):
        category = draw(st.sampled_from(CATEGORIES))
        x1 = draw(st.integers(min_value=0, max_value=W - 1))
        x2 = draw(st.integers(min_value=x1 + 1, max_value=W))
        y1 = index * 100  # distinct boxes: no loop collapsing interferes
        fields: dict[str, Any] = {"bbox": [x1, y1, x2, y1 + draw(st.integers(min_value=1, max_value=100))]}
        fields["category"] = category
        if category != "Picture":
            # A distinct short text: neither a repeated (category, text) nor a runaway.
            fields["text"] = f"{index}:" + draw(st.text(max_size=40))
        elements.append(fields)
    ascii_only = draw(st.booleans())
    separator = draw(st.sampled_from([", ", ",", ",\n", ",\n  "]))
    pieces = [json.dumps(element, ensure_ascii=ascii_only) for element in elements]
    raw, ends = "[", []
    for index, piece in enumerate(pieces):
        raw += (separator if index else "") + piece
        ends.append(len(raw))
    return elements, raw + "]", ends


def as_layout_element(fields: dict[str, Any]) -> LayoutElement:
    return LayoutElement(fields["category"], tuple(fields["bbox"]), fields.get("text"))


@settings(database=None, deadline=None, max_examples=300)
@given(answer=layout_answers(), data=st.data())
def test_a_cut_answer_keeps_exactly_the_elements_completed_before_the_cut(
    answer: tuple[list[dict[str, Any]], str, list[int]], data: st.DataObject
) -> None:
    elements, raw, ends = answer
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)), label="cut")
    result = parse(raw[:cut])
    expected = [as_layout_element(fields) for fields, end in zip(elements, ends, strict=True) if end <= cut]
    assert result.elements == expected
    assert result.dropped == {}
    if cut == len(raw):
        assert (result.status, result.repairs) == ("ok", {})
    elif cut == 0:
        assert (result.status, result.repairs) == ("invalid", {})
    else:
        assert result.repairs == {"truncated_tail": 1}
        assert result.status == ("repaired" if expected else "invalid")


@st.composite
def mutated_answers(draw: st.DrawFn) -> str:
    """A valid answer with characters deleted, inserted, duplicated or swapped at random places."""
    _, raw, _ = draw(layout_answers())
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        size = draw(st.integers(min_value=0, max_value=20))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "replace"]))
        if kind == "delete":
            raw = raw[:at] + raw[at + size :]
        elif kind == "insert":
            raw = raw[:at] + draw(st.one_of(JSONISH, st.text(max_size=10))) + raw[at:]
        elif kind == "duplicate":
            raw = raw[:at] + raw[at : at + size] * draw(st.integers(min_value=2, max_value=12)) + raw[at:]
        else:
            raw = raw[:at] + draw(st.text(alphabet='{}[],:"\\', min_size=1, max_size=2)) + raw[at + 1 :]
    return raw


@settings(database=None, deadline=None, max_examples=300)
@given(raw=mutated_answers(), with_text=st.booleans(), size=st.sampled_from([(W, H), (640, 480), (56, 56)]))
def test_never_raises_on_mutated_answers(raw: str, with_text: bool, size: tuple[int, int]) -> None:
    width, height = size
    assert_well_formed(
        parse_layout_output(raw, width=width, height=height, with_text=with_text), width, height, with_text
    )


@settings(database=None, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_the_reader_agrees_with_json_on_valid_arrays(value: Any) -> None:
    raw = json.dumps([value])
    salvage = read_json(raw)
    assert salvage.found
    assert salvage.value == [value]
    assert salvage.missing_commas == 0
