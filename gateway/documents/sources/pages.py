"""An uploaded PDF, multi-page TIFF or single image -> page images, with page selection and a DPI cap.

    open_document(bytes) ─► SourceDocument(kind, page_count)      sniff, count, refuse early (400/413)
    parse_pages("1-3,7", page_count) ─► [1, 2, 3, 7]
    render_page(document, n, dpi=200, pool=...) ─► SourcePage(n, RGB image, dpi used, text layer)
    render_pages(document, numbers, ...) ─► the same, in order, a few pages ahead

PDF pages are rendered by PDFium (pypdfium2; see `pdf_render.py`) at the requested DPI (dots.ocr: 200),
lowered to the largest integer DPI at which neither side exceeds 4500 px. PDFium is not thread-safe, so pages
render in worker processes (`make_render_pool`, one per CPU, one page each at a time, killed when the page is
not wanted any more or over its time budget): each task reopens the PDF, renders one page and returns raw RGB
bytes, its size, the DPI used and the text layer.
Measured on the 2-vCPU development machine, the dots.ocr demo PDF (2 A3 pages at 200 DPI, 2339x3308 each),
both pages requested at once, including the parent building the PIL images (medians of 10 after warm-up):

    process pool, 2 workers (spawn)      196-222 ms   (first call 370-390 ms: starting the workers)
    one thread per page, a PDFium lock   239-261 ms   (serialised: 2 x ~124 ms per page)

The pool wins even on two cores, and by more with more; it keeps PDFium's CPU time (and crashes) out of the
gateway's process, for a copy of the PDF to the worker per page and 23 MB of pixels back per A3 page.
TIFF frames and images are decoded in a thread (`documents.images`: sniffing, pixel cap, EXIF, RGB on white;
toward the model's size when it is known); frame N of a TIFF by pointing the header at its IFD (`tiff_frames`).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from gateway.documents.images.decode import ImageTooLarge
from gateway.documents.images.prepare import decode_image, decode_model_sized
from gateway.documents.sources.pdf_render import (
    DEFAULT_DPI,
    MAX_PAGE_PT,
    MAX_SIDE_PX,
    MIN_PAGE_PT,
    PageTooManyPixels,
    PdfUnreadable,
    RenderedPage,
    RenderFailed,
    inspect_pdf,
    pdf_dpi,
    render_in_worker,
)
from gateway.documents.sources.render_pool import (
    RenderPool,
    RenderTimedOut,
    WorkerDied,
    make_render_pool,
    render_workers,
)
from gateway.documents.sources.tiff_frames import TiffUnreadable, tiff_frame, tiff_ifd_offsets
from gateway.errors import InvalidRequest, shown
from gateway.models.registry import ImagePolicy

__all__ = [
    "DEFAULT_DPI",
    "MAX_SIDE_PX",
    "DocumentRejected",
    "RenderPool",
    "SourceDocument",
    "SourcePage",
    "TooManyPages",
    "make_render_pool",
    "open_document",
    "parse_pages",
    "pdf_dpi",
    "render_page",
    "render_pages",
    "render_workers",
]

# At most 9 digits a number: no document has a billion pages, and Python refuses to convert a string of more
# than 4,300 digits to an int at all (a ValueError that would otherwise surface as a 500).
_PAGE_PART = re.compile(r"([0-9]{1,9})\s*(?:(-)\s*([0-9]{0,9}))?")


class DocumentRejected(InvalidRequest):
    """The upload cannot be turned into pages: encrypted, corrupt, no pages, absurd page size (400)."""


class TooManyPages(InvalidRequest):
    """The document has more pages than the gateway takes in one request (413)."""

    status_code = 413


@dataclass(frozen=True)
class SourceDocument:
    kind: Literal["pdf", "tiff", "image"]
    page_count: int
    data: bytes


@dataclass(frozen=True)
class SourcePage:
    number: int  # 1-based page number in the document
    image: Image.Image  # RGB
    dpi: int | None  # the DPI used (PDF pages), None for images/TIFF frames
    text: str | None  # the PDF's embedded text layer for this page ("" when it has none), None for images
    # Set when the page was drawn directly at a model's input size (render_page's `model_policy`): `image` is
    # then that size, and this is the page's own size at `dpi`, the pixels its boxes are reported in.
    original_size: tuple[int, int] | None = None


def open_document(data: bytes, *, param: str, max_pages: int) -> SourceDocument:
    """Sniff and check an upload; nothing is rendered. Blocking (PDFium parses the PDF): call it in a thread.

    Raises DocumentRejected (400) for an encrypted, unreadable or empty document or an absurd page size, and
    TooManyPages (413) above `max_pages`; both carry `param`. Any other bytes are kind "image", one page, left
    for `decode_image` to judge when the page is rendered.
    """
    if b"%PDF-" in data[:1024]:  # readers accept junk before the header within the first 1 KiB
        try:
            sizes = inspect_pdf(data)
        except PdfUnreadable as exc:
            if exc.reason == "encrypted":
                message = f"`{param}` is encrypted ({exc.detail}); send a PDF that opens without a password"
            elif exc.reason == "no pages":
                message = f"`{param}` has no pages: {exc.detail}"
            else:
                message = f"`{param}` is not a readable PDF (truncated or corrupt): {exc.detail}"
            raise DocumentRejected(message, param=param) from exc
        _check_page_count(len(sizes), max_pages, param, "PDF")
        for number, (width, height) in enumerate(sizes, start=1):
            if not (MIN_PAGE_PT <= width <= MAX_PAGE_PT and MIN_PAGE_PT <= height <= MAX_PAGE_PT):
                raise DocumentRejected(
                    f"`{param}` page {number} is {width:g}x{height:g} pt; pages must be {MIN_PAGE_PT:g} to "
                    f"{MAX_PAGE_PT:,.0f} pt (200 inches) on each side",
                    param=param,
                )
        return SourceDocument(kind="pdf", page_count=len(sizes), data=data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        try:
            frames = len(tiff_ifd_offsets(data, limit=max_pages + 1))
        except TiffUnreadable as exc:
            raise DocumentRejected(f"`{param}` is not a readable TIFF: {exc}", param=param) from exc
        _check_page_count(frames, max_pages, param, "TIFF")
        return SourceDocument(kind="tiff", page_count=frames, data=data)
    return SourceDocument(kind="image", page_count=1, data=data)


def _check_page_count(count: int, max_pages: int, param: str, kind: str) -> None:
    if count == 0:
        raise DocumentRejected(f"`{param}` is a {kind} with no pages", param=param)
    if count > max_pages:
        # A TIFF's frames are counted only up to max_pages + 1: a hostile file may chain millions.
        counted = f"more than {max_pages:,}" if kind == "TIFF" else f"{count:,}"
        raise TooManyPages(
            f"`{param}` has {counted} pages; the limit is {max_pages:,} per request (select some with `pages`)",
            param=param,
        )


def parse_pages(spec: str | None, page_count: int) -> list[int]:
    """A page selection like "1-3,7", " 2 , 5-6 " or "4-" (to the end) -> sorted unique 1-based numbers.

    None or "" selects every page. Raises InvalidRequest(param="pages") naming the bad part.
    """
    if spec is None or not spec.strip():
        return list(range(1, page_count + 1))
    selected: set[int] = set()
    for raw_part in spec.split(","):
        part = raw_part.strip()
        match = _PAGE_PART.fullmatch(part)
        if match is None:
            raise InvalidRequest(
                f"`pages` part {shown(part)!r} is not a page or range: use e.g. 3, 1-3 or 4- (pages count from 1)",
                param="pages",
            )
        first_text, dash, last_text = match.groups()
        first = int(first_text)
        last = int(last_text) if last_text else (page_count if dash else first)
        if first < 1:
            raise InvalidRequest(f"`pages` part {part!r}: pages count from 1", param="pages")
        if first > page_count or last > page_count:
            raise InvalidRequest(
                f"`pages` part {part!r} is out of range: the document has {page_count} page(s)", param="pages"
            )
        if last < first:
            raise InvalidRequest(f"`pages` part {part!r} is a reversed range", param="pages")
        selected.update(range(first, last + 1))
    return sorted(selected)


async def render_page(
    document: SourceDocument,
    number: int,
    *,
    dpi: int = DEFAULT_DPI,
    pool: RenderPool,
    max_pixels: int,
    param: str = "file",
    model_policy: ImagePolicy | None = None,
) -> SourcePage:
    """Page `number` (1-based) as an RGB image: PDF pages drawn in `pool` at up to `dpi`, TIFF frames and images
    decoded in a thread. With `model_policy`, at that model's input size (its own size in `original_size`).

    Raises ImageTooLarge (413) above `max_pixels`, DocumentRejected or ImageRejected (400) for a page that cannot
    be read or drawn within a worker's time or memory. Cancelling kills the worker drawing the page.
    """
    if not 1 <= number <= document.page_count:
        raise InvalidRequest(f"page {number} is out of range: the document has {document.page_count}", param="pages")
    if document.kind in ("image", "tiff"):
        data = document.data
        if document.kind == "tiff":
            data = await asyncio.to_thread(_tiff_frame, document.data, number, param)
        if model_policy is not None:  # decoded toward the model's size: a huge upload never decodes in full
            image, size = await asyncio.to_thread(
                decode_model_sized, data, model_policy, param=param, max_pixels=max_pixels
            )
            # At its own size it is sent padded (prepare_decoded), not as a model-sized page.
            model_sized = size if image.size != size else None
            return SourcePage(number=number, image=image, dpi=None, text=None, original_size=model_sized)
        image = await asyncio.to_thread(decode_image, data, param=param, max_pixels=max_pixels)
        return SourcePage(number=number, image=image, dpi=None, text=None)
    rendered = await _render_pdf_page(document.data, number, dpi, pool, max_pixels, param, model_policy)
    if rendered.model_size is not None:
        image = Image.frombytes("RGB", rendered.model_size, rendered.rgb)
        size = (rendered.width, rendered.height)
        return SourcePage(number=number, image=image, dpi=rendered.dpi, text=rendered.text, original_size=size)
    image = Image.frombytes("RGB", (rendered.width, rendered.height), rendered.rgb)
    return SourcePage(number=number, image=image, dpi=rendered.dpi, text=rendered.text)


def _tiff_frame(data: bytes, number: int, param: str) -> bytes:
    try:
        return tiff_frame(data, number)
    except TiffUnreadable as exc:
        raise DocumentRejected(f"`{param}` page {number} is not readable: {exc}", param=param) from exc


async def _render_pdf_page(
    data: bytes,
    number: int,
    dpi: int,
    pool: RenderPool,
    max_pixels: int,
    param: str,
    model_policy: ImagePolicy | None,
) -> RenderedPage:
    try:
        return await pool.run(render_in_worker, data, number - 1, dpi, max_pixels, model_policy)
    except PageTooManyPixels as exc:
        width, height = exc.args
        raise ImageTooLarge(
            f"`{param}` page {number} renders to {width}x{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} (ask for a lower `dpi`)",
            param=param,
        ) from None
    except RenderFailed as exc:
        raise DocumentRejected(f"`{param}` page {number} could not be rendered: {exc}", param=param) from None
    except RenderTimedOut as exc:
        raise DocumentRejected(
            f"`{param}` page {number} could not be rendered within {exc.args[0]:g} s (GATEWAY_RENDER_TIMEOUT_S): "
            "its drawing is too complex",
            param=param,
        ) from None
    except (WorkerDied, MemoryError):
        # Each worker runs one page at a time, so a death is this page's own doing: a PDFium crash, or more
        # memory than a worker may take (GATEWAY_RENDER_MAX_BYTES).
        raise DocumentRejected(
            f"`{param}` page {number} could not be rendered: it crashed the PDF renderer or needed more memory "
            "than a render worker may use (GATEWAY_RENDER_MAX_BYTES)",
            param=param,
        ) from None


async def render_pages(
    document: SourceDocument,
    numbers: Sequence[int],
    *,
    dpi: int = DEFAULT_DPI,
    pool: RenderPool,
    max_pixels: int,
    param: str = "file",
    ahead: int | None = None,
) -> AsyncIterator[SourcePage]:
    """Pages `numbers`, in that order, rendering up to `ahead` (default: one per CPU) concurrently.

    Only that many pages are held at once (an A3 page at 200 DPI is 23 MB). Use it in `contextlib.aclosing` so
    that leaving early cancels what still renders; a failing page's error is raised when its turn comes.
    """
    window = max(1, ahead or render_workers())
    pending: deque[asyncio.Task[SourcePage]] = deque()
    try:
        for number in numbers:
            page = render_page(document, number, dpi=dpi, pool=pool, max_pixels=max_pixels, param=param)
            pending.append(asyncio.create_task(page))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)  # retrieve, so nothing logs "never retrieved"
