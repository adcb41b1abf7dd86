"""OTSL table markup (PaddleOCR-VL's "Table Recognition:" answers) turned into an HTML table.

OTSL writes a table as a grid of cell tokens, one row per `<nl>`:
  <fcel> a cell with text (the text follows the token)   <ecel> an empty cell
  <lcel> merged with the cell to its left                <ucel> merged with the cell above
  <xcel> merged both ways (inside a 2-D span)
A cell that starts a span gets colspan/rowspan counted from the tokens that continue it, as PaddleX's
`convert_otsl_to_html` does. Tokens are told apart by their literal spelling; anything before the first cell
token is dropped. Text is HTML-escaped, since the Markdown answer passes HTML through.
"""

from __future__ import annotations

import html
import re

_TOKEN = re.compile(r"<(fcel|ecel|lcel|ucel|xcel|nl)>")
_CELL_TOKENS = frozenset({"fcel", "ecel", "lcel", "ucel", "xcel"})
_OTSL_TABLE = re.compile(
    r"(?:<(?:fcel|ecel|lcel|ucel|xcel)>.*?)+(?:<nl>|$)(?:(?:<(?:fcel|ecel|lcel|ucel|xcel)>.*?)+(?:<nl>|$))*", re.DOTALL
)


def has_otsl(text: str) -> bool:
    """Whether `text` holds OTSL cell tokens."""
    return _TOKEN.search(text) is not None and ("<fcel>" in text or "<ecel>" in text)


def otsl_to_html(text: str) -> str:
    """One OTSL table as `<table>…</table>`; ragged rows are padded with empty cells."""
    rows: list[list[tuple[str, str]]] = [[]]
    parts = _TOKEN.split(text)
    # split() alternates text and token names: parts[0] precedes the first token.
    for index in range(1, len(parts), 2):
        token, following = parts[index], parts[index + 1]
        if token == "nl":
            rows.append([])
        elif token in _CELL_TOKENS:
            rows[-1].append((token, following.strip()))
    rows = [row for row in rows if row]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    grid = [row + [("ecel", "")] * (width - len(row)) for row in rows]
    out = ["<table>"]
    for r, row in enumerate(grid):
        out.append("<tr>")
        for c, (token, content) in enumerate(row):
            if token not in ("fcel", "ecel"):
                continue  # part of a span started further left or above
            colspan = 1
            while c + colspan < width and grid[r][c + colspan][0] in ("lcel", "xcel"):
                colspan += 1
            rowspan = 1
            while r + rowspan < len(grid) and grid[r + rowspan][c][0] in ("ucel", "xcel"):
                rowspan += 1
            spans = (f' colspan="{colspan}"' if colspan > 1 else "") + (f' rowspan="{rowspan}"' if rowspan > 1 else "")
            out.append(f"<td{spans}>{html.escape(content, quote=False)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def replace_otsl_tables(text: str) -> str:
    """Every OTSL run in a Markdown answer replaced by its HTML table; text without OTSL is returned as is."""
    if not has_otsl(text):
        return text
    return _OTSL_TABLE.sub(lambda match: otsl_to_html(match.group(0)), text)
