"""Markdown for a page: from dots.ocr layout elements, or from an OCR answer that already is Markdown.

Per category, following what dots.ocr's own converter produces (so results compare with its benchmarks):
- Table: the HTML as the model wrote it (Markdown renderers pass HTML through).
- Formula: display math, `$$\\n…\\n$$`, whatever delimiters the model used or left out (see `_formula`).
- Picture: whatever the caller's `picture` callback returns (e.g. an embedded crop), else a reference to its
  box, exactly `![Picture](#bbox=x1,y1,x2,y2)` (integers, no spaces, in the pixels of the element's bbox: model
  input as parsed, or original-image pixels once the caller has mapped them), so a client can crop it itself.
- Everything else: the Markdown text, trimmed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from gateway.documents.output.layout import LayoutElement, collapse_runaway

_HEADERS_FOOTERS = frozenset({"Page-header", "Page-footer"})
# Any LaTeX command (`\frac`, `\alpha`, `\begin`): the text is LaTeX even without delimiters.
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
# Inline math the model already delimited: `$…$` or `\(…\)`.
_INLINE_MATH = re.compile(r"\$[^$]+\$|\\\(.+?\\\)", re.DOTALL)


def layout_markdown(
    elements: Sequence[LayoutElement],
    *,
    skip_headers_footers: bool,
    picture: Callable[[LayoutElement], str] | None = None,
) -> str:
    """The page as Markdown: one block per element, in reading order, separated by a blank line.

    `skip_headers_footers` leaves out Page-header and Page-footer (the `markdown_no_headers` variant, which is
    what the OmniDocBench and olmOCR-bench numbers are measured on). An element without text, or whose block
    comes out empty, adds nothing, so there are no empty paragraphs.
    """
    blocks: list[str] = []
    for element in elements:
        if skip_headers_footers and element.category in _HEADERS_FOOTERS:
            continue
        block = _block(element, picture)
        if block.strip():
            blocks.append(block)
    return "\n\n".join(blocks)


def plain_markdown(text: str) -> str:
    """An OCR answer (already Markdown), trimmed, with any runaway repetition cut to its first occurrence."""
    return collapse_runaway(text.strip())[0].strip()


def _block(element: LayoutElement, picture: Callable[[LayoutElement], str] | None) -> str:
    if element.category == "Picture":
        if picture is not None:
            return picture(element)
        x1, y1, x2, y2 = element.bbox
        return f"![Picture](#bbox={x1},{y1},{x2},{y2})"
    if element.text is None:
        return ""
    if element.category == "Table":
        return element.text
    if element.category == "Formula":
        return _formula(element.text)
    return _unquote_math(element.text.strip())


def _formula(text: str) -> str:
    """A formula as display math.

    `$$x$$` and `\\[x\\]` become `$$\\nx\\n$$`; text that already holds delimited math (several `$$` blocks,
    inline `$…$`, `\\(…\\)`, or `\\[…\\]` among other text) is kept; LaTeX without delimiters is wrapped;
    text with no LaTeX at all (`E = mc^2`, a plain number) is kept as is, as dots.ocr does.
    """
    text = text.strip()
    for opening, closing in (("$$", "$$"), ("\\[", "\\]")):
        if len(text) >= 2 * len(opening) and text.startswith(opening) and text.endswith(closing):
            inner = text[len(opening) : -len(closing)]
            # Only one delimited block: `$$a$$ + $$b$$` must not become `$$\na$$ + $$b\n$$`.
            if "$" not in inner and opening not in inner and closing not in inner:
                return f"$$\n{inner.strip()}\n$$" if inner.strip() else ""
    if _INLINE_MATH.search(text) or ("\\[" in text and "\\]" in text):
        return text
    if _LATEX_COMMAND.search(text):
        return f"$$\n{text}\n$$"
    return text


def _unquote_math(text: str) -> str:
    """`` `$x$` `` (math the model put in a code span, which would show its dollars) becomes `$x$`."""
    if len(text) >= 4 and text.startswith("`$") and text.endswith("$`") and "`" not in text[1:-1]:
        return text[1:-1]
    return text
