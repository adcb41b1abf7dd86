"""How layout elements and OCR answers become Markdown."""

from __future__ import annotations

import pytest

from gateway.documents.output.layout import LayoutElement
from gateway.documents.output.markdown import layout_markdown, plain_markdown

BOX = (10, 20, 300, 400)


def md(category: str, text: str | None) -> str:
    return layout_markdown([LayoutElement(category, BOX, text)], skip_headers_footers=False)


PAGE = [
    LayoutElement("Page-header", (0, 0, 100, 20), "Journal, Vol. 12"),
    LayoutElement("Title", (0, 30, 100, 60), "# A Title"),
    LayoutElement("Text", (0, 70, 100, 90), "  Some *text*.  \n"),
    LayoutElement("Picture", (5, 100, 95, 200), None),
    LayoutElement("Page-footer", (0, 980, 100, 1000), "7"),
]


def test_elements_are_joined_by_blank_lines_in_order() -> None:
    assert layout_markdown(PAGE, skip_headers_footers=False) == (
        "Journal, Vol. 12\n\n# A Title\n\nSome *text*.\n\n![Picture](#bbox=5,100,95,200)\n\n7"
    )


def test_headers_and_footers_can_be_skipped() -> None:
    assert layout_markdown(PAGE, skip_headers_footers=True) == (
        "# A Title\n\nSome *text*.\n\n![Picture](#bbox=5,100,95,200)"
    )


def test_no_elements_is_an_empty_page() -> None:
    assert layout_markdown([], skip_headers_footers=False) == ""


def test_a_picture_uses_the_callers_rendering() -> None:
    rendered = layout_markdown(
        PAGE, skip_headers_footers=True, picture=lambda element: f"![]({element.category}:{element.bbox[0]})"
    )
    assert rendered == "# A Title\n\nSome *text*.\n\n![](Picture:5)"


def test_elements_without_text_add_no_empty_paragraph() -> None:
    elements = [
        LayoutElement("Text", BOX, "a"),
        LayoutElement("Text", BOX, None),  # detect mode
        LayoutElement("Caption", BOX, "   "),
        LayoutElement("Formula", BOX, ""),
        LayoutElement("Table", BOX, "\n"),
        LayoutElement("Text", BOX, "b"),
    ]
    assert layout_markdown(elements, skip_headers_footers=False) == "a\n\nb"
    assert layout_markdown(elements, skip_headers_footers=False, picture=lambda _: "") == "a\n\nb"


def test_a_detect_mode_page_shows_only_its_pictures() -> None:
    elements = [LayoutElement("Title", BOX, None), LayoutElement("Picture", BOX, None)]
    assert layout_markdown(elements, skip_headers_footers=False) == "![Picture](#bbox=10,20,300,400)"


def test_a_table_is_its_html_as_is() -> None:
    html = '<table><tr><td rowspan="2">a</td><td>b</td></tr>\n<tr><td>c</td></tr></table>'
    assert md("Table", html) == html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$$x^2$$", "$$\nx^2\n$$"),
        ("  $$ \\frac{a}{b} $$\n", "$$\n\\frac{a}{b}\n$$"),
        ("\\[x^2\\]", "$$\nx^2\n$$"),
        ("\\[ \\sum_i x_i \\]", "$$\n\\sum_i x_i\n$$"),
        ("$x$ and $y$", "$x$ and $y$"),
        ("$$a$$ + $$b$$", "$$a$$ + $$b$$"),
        ("where \\[a\\] and \\[b\\]", "where \\[a\\] and \\[b\\]"),
        ("\\(a\\) = \\(b\\)", "\\(a\\) = \\(b\\)"),
        ("\\frac{a}{b} = c", "$$\n\\frac{a}{b} = c\n$$"),
        ("\\begin{aligned} a &= b \\end{aligned}", "$$\n\\begin{aligned} a &= b \\end{aligned}\n$$"),
        ("E = mc^2", "E = mc^2"),
        ("  (1)  ", "(1)"),
    ],
)
def test_formulas_become_display_math(text: str, expected: str) -> None:
    assert md("Formula", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Plain text.\n", "Plain text."),
        ("`$x^2$`", "$x^2$"),
        (" `$a + b$` ", "$a + b$"),
        ("`code`", "`code`"),
        ("`$x$` and `$y$`", "`$x$` and `$y$`"),
        ("Multiple   spaces\n\nkept", "Multiple   spaces\n\nkept"),
    ],
)
def test_other_text_is_trimmed_and_math_leaves_its_code_span(text: str, expected: str) -> None:
    assert md("Text", text) == expected


@pytest.mark.parametrize("category", ["Caption", "Footnote", "List-item", "Section-header", "Title"])
def test_every_text_category_follows_the_text_rules(category: str) -> None:
    assert md(category, " `$x$` ") == "$x$"


def test_plain_markdown_is_trimmed() -> None:
    assert plain_markdown("\n\n# Title\n\nBody.\n  ") == "# Title\n\nBody."


def test_plain_markdown_cuts_a_runaway_repetition() -> None:
    looping = "| a | b |\n" + "| 0 | 0 |\n" * 40
    assert plain_markdown(f"# Table\n\n{looping}\nAfter.") == "# Table\n\n| a | b |\n| 0 | 0 |\n\nAfter."


def test_plain_markdown_leaves_short_repetition_alone() -> None:
    text = "Step one. " * 9
    assert plain_markdown(text) == text.strip()
