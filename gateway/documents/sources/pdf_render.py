"""PDF pages -> RGB pixels and their text layer, with pypdfium2 (PDFium; Apache-2.0/BSD, unlike AGPL PyMuPDF).

Split from `pages.py`, which is the API. Everything that touches PDFium lives here because PDFium is
not thread-safe: in the gateway process every call holds `PDFIUM_LOCK` (only `inspect_pdf`, which reads the
page count and sizes), and pages are rendered by `render_in_worker` in the render pool's worker processes, each
single-threaded, so no lock is needed there.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image

from gateway.documents.images.geometry import fits_policy, smart_resize
from gateway.models.registry import ImagePolicy


def _pdfium() -> tuple[Any, Any]:
    """pypdfium2 and its raw bindings, imported on first use: loading PDFium costs ~8 MB of RSS, which a
    gateway that never sees a PDF should not pay (idle RSS budget)."""
    import pypdfium2  # type: ignore[import-untyped]
    import pypdfium2.raw  # type: ignore[import-untyped]

    return pypdfium2, pypdfium2.raw


DEFAULT_DPI: Final = 200  # dots.ocr renders PDF pages at 200 DPI
MAX_SIDE_PX: Final = 4500  # dots.ocr's longest rendered side
MIN_PAGE_PT: Final = 1.0  # a page under 1 pt (1/72 inch) on a side has nothing to read
MAX_PAGE_PT: Final = 14_400.0  # 200 inches; PDF's own limit is 14,400 user units (ISO 32000-1, annex C)

PDFIUM_LOCK: Final = threading.Lock()


class PdfUnreadable(Exception):
    """PDFium could not load the bytes; `reason` is 'encrypted', 'no pages' or 'corrupt'."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class RenderFailed(Exception):
    """A page could not be rendered (raised in a worker; plain args so it pickles back to the gateway)."""


class PageTooManyPixels(Exception):
    """The rendered page would exceed the gateway's pixel limit: args are (width, height)."""


@dataclass(frozen=True)
class RenderedPage:
    """What a worker sends back: raw RGB rows (width * 3 bytes each, no padding), the DPI used, the text layer."""

    width: int
    height: int
    dpi: int
    text: str
    rgb: bytes
    # When the caller gave a model policy, `rgb` is the page drawn directly at the model-input size (below), and
    # width/height stay the page's size at `dpi`, the pixels boxes are reported in.
    model_size: tuple[int, int] | None = None


def pdf_pixel_size(width_pt: float, height_pt: float, dpi: int) -> tuple[int, int]:
    """The bitmap size PDFium renders at `dpi`: pypdfium2 takes ceil(points * dpi / 72) of each side."""
    scale = dpi / 72
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)


def pdf_dpi(width_pt: float, height_pt: float, requested_dpi: int, max_side_px: int = MAX_SIDE_PX) -> int:
    """The largest integer DPI, at most `requested_dpi`, at which neither rendered side exceeds `max_side_px`.

    At least 1. Sides are counted as the renderer counts them (`pdf_pixel_size`, rounding up), so the bound
    holds for the bitmap actually produced. dots.ocr drops straight to 72 DPI instead; this keeps all it can.
    """
    long_side = max(width_pt, height_pt)
    if long_side <= 0:
        return max(1, requested_dpi)
    # The arithmetic bound first, then a step or two down to absorb ceil and float rounding.
    dpi = max(1, min(requested_dpi, math.floor(max_side_px * 72 / long_side) + 1))
    while dpi > 1 and max(pdf_pixel_size(width_pt, height_pt, dpi)) > max_side_px:
        dpi -= 1
    return dpi


def inspect_pdf(data: bytes) -> list[tuple[float, float]]:
    """Each page's (width, height) in points. Raises PdfUnreadable. Holds PDFIUM_LOCK; call from a thread.

    PDFium's own API, not `pdfium.PdfDocument`: that raises for a document with no pages quoting
    FPDF_GetLastError, which PDFium only sets when loading fails, so the reason given would be a stale one
    (and the loaded document would never be closed).
    """
    _, pdfium_raw = _pdfium()
    with PDFIUM_LOCK:
        document = pdfium_raw.FPDF_LoadMemDocument64(data, len(data), None)
        if not document:
            raise _unreadable(pdfium_raw.FPDF_GetLastError())
        try:
            sizes = []
            size = pdfium_raw.FS_SIZEF()
            for index in range(pdfium_raw.FPDF_GetPageCount(document)):
                if not pdfium_raw.FPDF_GetPageSizeByIndexF(document, index, size):
                    raise PdfUnreadable("corrupt", f"the size of page {index + 1} cannot be read")
                sizes.append((float(size.width), float(size.height)))
        finally:
            pdfium_raw.FPDF_CloseDocument(document)
    if not sizes:
        raise PdfUnreadable("no pages", "its page tree is empty")
    return sizes


def _unreadable(code: int) -> PdfUnreadable:
    _, pdfium_raw = _pdfium()
    if code == pdfium_raw.FPDF_ERR_PASSWORD:
        return PdfUnreadable("encrypted", "it needs a password")
    if code == pdfium_raw.FPDF_ERR_SECURITY:
        return PdfUnreadable("encrypted", "with an unsupported security handler")
    reason = {
        pdfium_raw.FPDF_ERR_FILE: "the file cannot be read",
        pdfium_raw.FPDF_ERR_FORMAT: "not in PDF format or corrupted",
    }.get(code, f"PDFium error {code}")
    return PdfUnreadable("corrupt", reason)


def render_in_worker(
    data: bytes, index: int, requested_dpi: int, max_pixels: int, model_policy: ImagePolicy | None = None
) -> RenderedPage:
    """Render page `index` (0-based) of a PDF at up to `requested_dpi` on white, RGB, and read its text layer.

    Runs in a render-pool process. It reopens the document from bytes for every page (0.7 ms for the demo PDF;
    PDFium parses lazily, and loading the page itself takes ~17 ms either way) so that tasks are independent
    and any worker can take any page.
    """
    pdfium, _ = _pdfium()
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise RenderFailed(f"the PDF no longer loads: {exc}") from None
    try:
        page = document[index]
        try:
            width_pt, height_pt = page.get_size()
            dpi = pdf_dpi(width_pt, height_pt, requested_dpi)
            width, height = pdf_pixel_size(width_pt, height_pt, dpi)
            if width * height > max_pixels:
                raise PageTooManyPixels(width, height)
            text_page = page.get_textpage()
            try:
                text = str(text_page.get_text_range()).strip()
            finally:
                text_page.close()
            model_size = _model_size(width, height, model_policy)
            if model_size is not None:
                # PDFium scales each axis to the model-input size itself: no bicubic resize of a 200-dpi bitmap
                # afterwards (measured: ~30 ms instead of ~30 ms + 60-90 ms, mean difference 0.6/255 per pixel).
                rgb = _render_at(page, *model_size)
            else:
                bitmap = page.render(scale=dpi / 72)  # opaque white background, BGR: no alpha channel
                try:
                    image = bitmap.to_pil()
                    rgb = (image if image.mode == "RGB" else image.convert("RGB")).tobytes()
                    width, height = image.size
                finally:
                    bitmap.close()
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise RenderFailed(str(exc)) from None
    finally:
        document.close()
    return RenderedPage(width=width, height=height, dpi=dpi, text=text, rgb=rgb, model_size=model_size)


def _model_size(width: int, height: int, policy: ImagePolicy | None) -> tuple[int, int] | None:
    """(width, height) the model takes this page at, or None to render at the page's own size (no policy, or a
    size the policy cannot hold: the caller then rejects it with its usual message)."""
    if policy is None:
        return None
    try:
        model_height, model_width = smart_resize(height, width, policy)
    except ValueError:
        return None
    return (model_width, model_height) if fits_policy(model_height, model_width, policy) else None


def _render_at(page: Any, width: int, height: int) -> bytes:
    """The page drawn into a width x height RGB bitmap on white (each axis scaled on its own)."""
    pdfium, pdfium_raw = _pdfium()
    bitmap = pdfium.PdfBitmap.new_native(width, height, pdfium_raw.FPDFBitmap_BGR, rev_byteorder=True)
    try:
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, width, height)
        flags = pdfium_raw.FPDF_ANNOT | pdfium_raw.FPDF_REVERSE_BYTE_ORDER
        pdfium_raw.FPDF_RenderPageBitmap(bitmap, page, 0, 0, width, height, 0, flags)
        image: Image.Image = bitmap.to_pil()
        return (image if image.mode == "RGB" else image.convert("RGB")).tobytes()
    finally:
        bitmap.close()
