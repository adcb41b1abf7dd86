"""PDF pages the stand-in was told about in advance, recognised when their image arrives, read from their text layer.

The stand-in only ever sees a page image: the gateway renders PDF pages before a model gets them, as it must
for a real vLLM server. So a simulated model cannot read what it is sent. What it can do, honestly, is what the
demo offers: the user names the PDFs they are about to send (`--documents`), the stand-in renders each page
small once at start-up and keeps a fingerprint of it with the page's own text layer (PDFium's text runs, merged
into lines, with their boxes as fractions of the page). When a page image arrives, it is shrunk the same way;
a page whose fingerprint is close enough is answered from that text layer. Anything else (a photo, a scan, a
PDF it was not given) gets the fixed template. Every answer from here says it is simulated.

The fingerprint is the page in grey at 32x32, compared by mean absolute difference: the gateway renders the
same PDF with the same PDFium, only larger, so the two differ by resampling alone.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

_SIDE = 32  # fingerprint size: enough to tell pages apart, small enough to ignore resampling differences
_RENDER_LONG_SIDE = 512  # pixels of the long side when rendering a page for its fingerprint
_MAX_DIFFERENCE = 5.0  # mean absolute grey difference (0-255): the same page measured ~3, other pages 7 and up
_MAX_ASPECT_GAP = 0.03  # a page resized to the model's multiples of 28 px keeps its aspect within this
_MAX_PAGES = 200  # per document: the demo is for trying a few documents, not for indexing a library


@dataclass(frozen=True)
class TextLine:
    left: float  # fractions of the page's width and height, origin top left
    top: float
    right: float
    bottom: float
    text: str


@dataclass(frozen=True)
class KnownPage:
    source: str  # "report.pdf page 2", said in the simulated answer
    aspect: float  # width / height
    fingerprint: bytes
    lines: tuple[TextLine, ...]


def load_known_pages(paths: Iterable[Path]) -> list[KnownPage]:
    """Every page with a text layer in these PDFs. Raises OSError or ValueError for a file that is no PDF."""
    # Imported here: PDFium costs ~8 MB of RSS, which stand-ins without documents (the benchmarks') need not pay.
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    pages: list[KnownPage] = []
    for path in paths:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise ValueError(f"{path}: not a readable PDF ({exc})") from exc
        try:
            for index in range(min(len(document), _MAX_PAGES)):
                page = document[index]
                lines = _text_lines(page)
                if not lines:  # a scan: nothing to answer from, so the template answers it
                    continue
                width, height = page.get_size()
                scale = _RENDER_LONG_SIDE / max(width, height)
                image = page.render(scale=scale).to_pil()
                source = f"{path.name} page {index + 1}"
                pages.append(KnownPage(source, width / height, _fingerprint(image), tuple(lines)))
        finally:
            document.close()
    return pages


def find_page(pages: list[KnownPage], data_url: str) -> KnownPage | None:
    """The known page this image (a base64 data: URL) shows, or None."""
    if not pages:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data_url.partition(",")[2])))
        image.draft("L", (_SIDE * 4, _SIDE * 4))  # JPEG only: decode small
        aspect = image.width / image.height
        fingerprint = _fingerprint(image)
    except (OSError, ValueError):
        return None
    best: tuple[float, KnownPage] | None = None
    for page in pages:
        if abs(page.aspect - aspect) > _MAX_ASPECT_GAP * page.aspect:
            continue
        difference = sum(abs(a - b) for a, b in zip(page.fingerprint, fingerprint, strict=True)) / len(fingerprint)
        if difference <= _MAX_DIFFERENCE and (best is None or difference < best[0]):
            best = (difference, page)
    return best[1] if best else None


def _fingerprint(image: Image.Image) -> bytes:
    grey = image.convert("RGBA") if image.mode in ("RGBA", "LA", "P") else image
    if grey.mode == "RGBA":  # transparent pages look white, as the gateway flattens them
        background = Image.new("RGBA", grey.size, "white")
        grey = Image.alpha_composite(background, grey)
    return grey.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX).tobytes()


def _text_lines(page: Any) -> list[TextLine]:  # a pypdfium2 PdfPage
    """The text layer's lines in PDFium's reading order, each with the box around its characters."""
    width, height = page.get_size()
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count)  # one character per index, PDFium's own line breaks included
        lines: list[TextLine] = []
        start = 0
        for end in [*(i for i, char in enumerate(text) if char == "\n"), len(text)]:
            line_text = " ".join(text[start:end].split())
            boxes = [textpage.get_charbox(i) for i in range(start, min(end, count)) if not text[i].isspace()]
            start = end + 1
            if not line_text or not boxes:
                continue
            left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
            bottom, top = min(b[1] for b in boxes), max(b[3] for b in boxes)  # PDF y grows upwards
            x1, y1, x2, y2 = (
                min(max(v, 0.0), 1.0)
                for v in (left / width, (height - top) / height, right / width, (height - bottom) / height)
            )
            lines.append(TextLine(x1, y1, x2, y2, line_text))
        return lines
    finally:
        textpage.close()
