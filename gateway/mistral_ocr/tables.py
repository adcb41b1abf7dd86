"""An HTML table (what dots.ocr writes for a Table element) as a Markdown table (Mistral's `table_format=markdown`).

Markdown tables have no spans: a cell spanning n columns is written once and followed by n - 1 empty cells, and
row spans are not repeated, so the grid keeps its column count. Cell text is flattened to one line and `|`
escaped. Text that holds no `<table>` comes back unchanged.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._span = 1
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.found = True
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell = []
            span = dict(attrs).get("colspan") or "1"
            self._span = int(span) if span.isdigit() and 0 < int(span) <= 100 else 1
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = " ".join("".join(self._cell).split()).replace("|", "\\|")
            self.rows[-1] += [text] + [""] * (self._span - 1)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_table_markdown(html: str) -> str:
    """The table as Markdown, the first row as its header."""
    parser = _Cells()
    parser.feed(html)
    parser.close()
    rows = [row for row in parser.rows if row]
    if not parser.found or not rows:
        return html
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)
