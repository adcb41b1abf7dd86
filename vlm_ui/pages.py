"""Page pictures of an uploaded document, for drawing the answer on: images, PDF pages and TIFF frames.

The gateway renders PDFs itself for the model; the UI renders them again only to show them, at a modest DPI
(boxes are scaled from the page size the gateway reports, so the two need not match).
"""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2  # type: ignore[import-untyped]
from PIL import Image, ImageOps

_DISPLAY_DPI = 100  # enough to read a page on screen, cheap to render on a CPU
_MAX_SIDE = 2400


def is_pdf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"%PDF-"


def page_count(path: Path) -> int:
    """Pages in a PDF, frames in a TIFF, 1 for any other image (an unreadable file also says 1: the gateway
    is the one that rejects it, with its own message)."""
    try:
        if is_pdf(path):
            pdf = pypdfium2.PdfDocument(path)
            try:
                return len(pdf)
            finally:
                pdf.close()
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # any unreadable input: let the gateway judge it
        return 1


def selected_pages(spec: str, total: int) -> list[int]:
    """Page numbers a `pages` field (e.g. "1-3,7") selects among `total`; all of them when it is empty or
    not understood (the gateway validates the field and explains what is wrong)."""
    spec = spec.strip()
    if not spec:
        return list(range(1, total + 1))
    chosen: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            return list(range(1, total + 1))
        first = int(match.group(1))
        last = int(match.group(2) or first)
        chosen.update(n for n in range(first, last + 1) if 1 <= n <= total)
    return sorted(chosen)


def page_image(path: Path, page: int) -> Image.Image | None:
    """Page `page` (1-based) as an RGB image, or None when the file cannot be shown (the answer still is)."""
    try:
        if is_pdf(path):
            pdf = pypdfium2.PdfDocument(path)
            try:
                pdf_page = pdf[page - 1]
                width, height = pdf_page.get_size()  # points
                scale = min(_DISPLAY_DPI / 72, _MAX_SIDE / max(width, height))
                rendered: Image.Image = pdf_page.render(scale=scale).to_pil()
                return rendered.convert("RGB")
            finally:
                pdf.close()
        with Image.open(path) as image:
            image.seek(page - 1)
            # EXIF orientation as the gateway applies it, so the boxes land on the same pixels.
            shown = _on_white(ImageOps.exif_transpose(image))
            shown.thumbnail((_MAX_SIDE, _MAX_SIDE))
            return shown
    except Exception:  # a picture we cannot draw is not an error: the JSON and Markdown still show
        return None


def _on_white(image: Image.Image) -> Image.Image:
    """RGB, with transparency flattened on white as the gateway does (plain convert() would show it black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
