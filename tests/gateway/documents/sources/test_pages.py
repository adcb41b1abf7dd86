"""Documents to page images: what is accepted, which pages come out, at what DPI, and how the pool behaves.

Real PDFs come from tests/fixtures/documents; hostile PDFs are written by hand here (`minimal_pdf`), TIFFs and
PNGs with Pillow.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from gateway.documents.images.decode import ImageTooLarge
from gateway.documents.sources.pages import (
    DocumentRejected,
    RenderPool,
    SourceDocument,
    SourcePage,
    TooManyPages,
    make_render_pool,
    open_document,
    parse_pages,
    pdf_dpi,
    render_page,
    render_pages,
)
from gateway.documents.sources.pdf_render import pdf_pixel_size
from gateway.documents.sources.render_pool import WorkerDied
from gateway.errors import InvalidRequest
from tests.pdfs import minimal_pdf

DOCUMENTS = Path(__file__).resolve().parents[3] / "fixtures" / "documents"
DEMO_PDF = (DOCUMENTS / "dotsocr_demo_pdf1.pdf").read_bytes()
LIMIT = 50_000_000  # the gateway's pixel limit in these tests
TIMEOUT_S = 60  # every render is bounded; a spawned worker starts in well under a second


@pytest.fixture(scope="module")
def pool() -> Iterator[RenderPool]:
    render_pool = make_render_pool()
    yield render_pool
    render_pool.shutdown()
    assert not multiprocessing.active_children(), "the render pool left worker processes behind"


async def render(document: SourceDocument, number: int, pool: RenderPool, **kw: int) -> SourcePage:
    async with asyncio.timeout(TIMEOUT_S):
        return await render_page(document, number, dpi=kw.pop("dpi", 200), pool=pool, max_pixels=LIMIT, **kw)


def one_page_pdf(
    media_box: bytes = b"[0 0 612 792]", *, extra: list[bytes] | None = None, trailer: bytes = b""
) -> bytes:
    return minimal_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox " + media_box + b" >>",
            *(extra or []),
        ],
        trailer,
    )


def image_bytes(images: list[Image.Image], image_format: str) -> bytes:
    buffer = io.BytesIO()
    images[0].save(buffer, image_format, save_all=len(images) > 1, append_images=images[1:])
    return buffer.getvalue()


# --- pdf_dpi: the DPI cap -------------------------------------------------------------------------------------


def test_an_a3_page_keeps_the_requested_200_dpi() -> None:
    assert pdf_dpi(841.92, 1190.7, 200) == 200
    assert pdf_pixel_size(841.92, 1190.7, 200) == (2339, 3308)


def test_a_huge_page_gets_the_largest_dpi_that_keeps_both_sides_within_4500_px() -> None:
    # 3000 pt = 41.7 in: 108 DPI gives 3000 * 108 / 72 = 4500 px exactly; 109 would give 4541.7 -> 4542.
    assert pdf_dpi(3000, 3000, 200) == 108
    assert pdf_dpi(3000, 3000, 200, max_side_px=4499) == 107
    # The long side decides, either way round: 14,400 pt (200 in) at 22 DPI is 4400 px, at 23 it is 4600.
    assert pdf_dpi(14_400, 100, 200) == pdf_dpi(100, 14_400, 200) == 22


def test_pdf_dpi_never_raises_the_request_and_never_goes_below_1() -> None:
    assert pdf_dpi(612, 792, 72) == 72
    assert pdf_dpi(10_000_000, 10, 200) == 1


# --- parse_pages -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [1, 2, 3, 4, 5, 6, 7, 8]),
        ("", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("1-3,7", [1, 2, 3, 7]),
        (" 2 , 5-6 ", [2, 5, 6]),
        ("4-", [4, 5, 6, 7, 8]),
        ("3,1,3,2-3", [1, 2, 3]),
        ("8", [8]),
        ("2 - 4", [2, 3, 4]),
    ],
)
def test_parse_pages_accepts_pages_and_ranges(spec: str | None, expected: list[int]) -> None:
    assert parse_pages(spec, 8) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("9", "out of range"),
        ("7-9", "out of range"),
        ("9-", "out of range"),
        ("0", "count from 1"),
        ("0-2", "count from 1"),
        ("5-3", "reversed"),
        ("abc", "not a page or range"),
        ("1,,2", "not a page or range"),
        ("-3", "not a page or range"),
        ("1-2-3", "not a page or range"),
        ("1.5", "not a page or range"),
        ("²", "not a page or range"),
    ],
)
def test_parse_pages_rejects_what_it_cannot_read_naming_the_part(spec: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem) as caught:
        parse_pages(spec, 8)
    assert caught.value.param == "pages"
    assert caught.value.status_code == 400


@pytest.mark.parametrize("spec", ["1" * 5000, "1-" + "9" * 5000, "9" * 10])
def test_parse_pages_refuses_absurdly_long_numbers_as_a_400_quoting_only_their_start(spec: str) -> None:
    # 5,000 digits is past Python's int conversion limit: a ValueError, once a 500 with a traceback.
    with pytest.raises(InvalidRequest, match="not a page or range") as caught:
        parse_pages(spec, 8)
    assert caught.value.param == "pages"
    assert len(caught.value.message) < 300


# --- open_document: kinds and refusals -------------------------------------------------------------------------


def test_the_demo_pdf_is_a_two_page_pdf() -> None:
    document = open_document(DEMO_PDF, param="file", max_pages=100)
    assert (document.kind, document.page_count) == ("pdf", 2)


def test_a_multi_page_tiff_is_one_page_per_frame() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    data = image_bytes([Image.new("RGB", (40, 30), colour) for colour in colours], "TIFF")
    document = open_document(data, param="file", max_pages=10)
    assert (document.kind, document.page_count) == ("tiff", 3)
    with pytest.raises(TooManyPages, match="more than 2 pages; the limit is 2") as caught:
        open_document(data, param="file", max_pages=2)
    assert (caught.value.status_code, caught.value.param) == (413, "file")


def test_a_single_image_is_one_page_left_for_the_image_decoder_to_judge() -> None:
    document = open_document(image_bytes([Image.new("RGB", (10, 10))], "PNG"), param="file", max_pages=1)
    assert (document.kind, document.page_count) == ("image", 1)


def test_a_pdf_over_the_page_limit_is_413_naming_the_count_and_the_limit() -> None:
    with pytest.raises(TooManyPages, match="has 2 pages; the limit is 1") as caught:
        open_document(DEMO_PDF, param="document", max_pages=1)
    assert (caught.value.status_code, caught.value.param) == (413, "document")


ENCRYPT_DICT = b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> >>"
FILE_ID = b"/ID [<" + b"33" * 16 + b"> <" + b"33" * 16 + b">] "


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # RC4 standard security whose user password is not empty: PDFium asks for a password.
        (one_page_pdf(extra=[ENCRYPT_DICT], trailer=b"/Encrypt 4 0 R " + FILE_ID), "is encrypted"),
        (one_page_pdf(extra=[b"<< /Filter /Bogus /V 9 /R 9 >>"], trailer=b"/Encrypt 4 0 R " + FILE_ID), "is encrypted"),
        (DEMO_PDF[: len(DEMO_PDF) // 2], "not a readable PDF"),
        (b"%PDF-1.7\n" + b"\x00 garbage " * 100, "not a readable PDF"),
        (minimal_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]), "no pages"),
        (one_page_pdf(b"[0 0 100000 100000]"), "page 1 is 100000x100000 pt"),
        (one_page_pdf(b"[0 0 0.5 300]"), "page 1 is 0.5x300 pt"),
        (b"II*\x00\xff\xff\xff\x7f", "not a readable TIFF"),
    ],
    ids=["password", "unknown-security-handler", "truncated", "garbage", "zero-pages", "giant", "tiny", "bad-tiff"],
)
def test_unusable_documents_are_400_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(DocumentRejected, match=problem) as caught:
        open_document(data, param="file", max_pages=100)
    assert (caught.value.status_code, caught.value.param) == (400, "file")


def test_a_hand_written_pdf_is_readable_so_the_hostile_variants_test_what_they_claim() -> None:
    assert open_document(one_page_pdf(), param="file", max_pages=1).page_count == 1


# --- rendering ---------------------------------------------------------------------------------------------------


async def test_the_demo_pdf_page_1_renders_at_200_dpi_to_2339x3308_with_its_text_layer(pool: RenderPool) -> None:
    page = await render(open_document(DEMO_PDF, param="file", max_pages=10), 1, pool)
    assert (page.number, page.dpi, page.image.mode, page.image.size) == (1, 200, "RGB", (2339, 3308))
    assert page.text
    assert page.text == page.text.strip()
    assert page.image.getextrema() != ((255, 255), (255, 255), (255, 255)), "the page rendered blank"


async def test_a_lower_dpi_is_honoured(pool: RenderPool) -> None:
    page = await render(open_document(DEMO_PDF, param="file", max_pages=10), 2, pool, dpi=72)
    assert (page.number, page.dpi, page.image.size) == (2, 72, (842, 1191))


async def test_a_page_larger_than_the_pixel_limit_is_413(pool: RenderPool) -> None:
    document = open_document(DEMO_PDF, param="file", max_pages=10)
    with pytest.raises(ImageTooLarge, match="page 1 renders to 2339x3308") as caught:
        async with asyncio.timeout(TIMEOUT_S):
            await render_page(document, 1, dpi=200, pool=pool, max_pixels=1_000_000)
    assert (caught.value.status_code, caught.value.param) == (413, "file")


async def test_a_blank_page_renders_white_with_an_empty_text_layer(pool: RenderPool) -> None:
    document = open_document((DOCUMENTS / "olmocr_blank_book_pg1.pdf").read_bytes(), param="file", max_pages=10)
    page = await render(document, 1, pool)
    assert page.text == ""
    assert page.image.mode == "RGB"


async def test_pages_2_3_of_a_3_page_pdf_render_exactly_pages_2_and_3(pool: RenderPool) -> None:
    document = open_document((DOCUMENTS / "olmocr_mattsnotes.pdf").read_bytes(), param="file", max_pages=10)
    assert document.page_count == 3
    numbers = parse_pages("2-3", document.page_count)
    async with (
        asyncio.timeout(TIMEOUT_S),
        contextlib.aclosing(render_pages(document, numbers, dpi=100, pool=pool, max_pixels=LIMIT)) as pages,
    ):
        rendered = [page async for page in pages]
    assert [page.number for page in rendered] == [2, 3]
    for page in rendered:
        alone = await render(document, page.number, pool, dpi=100)
        assert ImageChops.difference(page.image, alone.image).getbbox() is None
    first = await render(document, 1, pool, dpi=100)
    assert ImageChops.difference(first.image, rendered[0].image).getbbox() is not None, "page 1 == page 2?"


async def test_a_tiff_frame_is_its_own_image(pool: RenderPool) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    data = image_bytes([Image.new("RGB", (40, 30 + i), colour) for i, colour in enumerate(colours)], "TIFF")
    document = open_document(data, param="file", max_pages=10)
    page = await render(document, 2, pool)
    assert (page.number, page.dpi, page.text, page.image.mode, page.image.size) == (2, None, None, "RGB", (40, 31))
    assert page.image.getpixel((5, 5)) == (0, 255, 0)
    last = await render(document, 3, pool)
    assert last.image.getpixel((0, 0)) == (0, 0, 255)


async def test_a_single_image_decodes_through_the_image_decoder(pool: RenderPool) -> None:
    data = image_bytes([Image.new("RGBA", (20, 10), (0, 0, 0, 0))], "PNG")
    page = await render(open_document(data, param="file", max_pages=1), 1, pool)
    assert (page.number, page.dpi, page.text, page.image.size) == (1, None, None, (20, 10))
    assert page.image.getpixel((0, 0)) == (255, 255, 255)  # transparency on white


async def test_rendering_both_demo_pages_at_once_gives_the_same_pixels_as_one_at_a_time(pool: RenderPool) -> None:
    document = open_document(DEMO_PDF, param="file", max_pages=10)
    async with asyncio.timeout(TIMEOUT_S):
        together = await asyncio.gather(
            render_page(document, 1, pool=pool, max_pixels=LIMIT), render_page(document, 2, pool=pool, max_pixels=LIMIT)
        )
        one_by_one = [await render(document, 1, pool), await render(document, 2, pool)]
    for concurrent_page, single in zip(together, one_by_one, strict=True):
        assert concurrent_page.number == single.number
        assert concurrent_page.text == single.text
        assert concurrent_page.image.tobytes() == single.image.tobytes()
    assert together[0].image.tobytes() != together[1].image.tobytes()


async def test_render_pages_stops_cleanly_when_the_caller_leaves_early(pool: RenderPool) -> None:
    document = open_document(DEMO_PDF, param="file", max_pages=10)
    async with (
        asyncio.timeout(TIMEOUT_S),
        contextlib.aclosing(render_pages(document, [1, 2], dpi=50, pool=pool, max_pixels=LIMIT, ahead=2)) as pages,
    ):
        async for page in pages:
            assert page.number == 1
            break


async def test_render_page_refuses_a_page_the_document_does_not_have(pool: RenderPool) -> None:
    document = open_document(DEMO_PDF, param="file", max_pages=10)
    with pytest.raises(InvalidRequest, match="page 3 is out of range") as caught:
        await render(document, 3, pool)
    assert caught.value.param == "pages"


async def test_render_page_carries_on_with_a_fresh_worker_after_one_died() -> None:
    render_pool = RenderPool(workers=1)
    try:
        with pytest.raises(WorkerDied):
            await render_pool.run(os._exit, 1)
        page = await render(open_document(DEMO_PDF, param="file", max_pages=10), 2, render_pool, dpi=36)
        assert (page.number, page.image.size) == (2, (421, 596))
    finally:
        render_pool.shutdown()


def test_the_pool_is_sized_to_the_cpus_this_process_may_use() -> None:
    render_pool = make_render_pool()
    try:
        assert render_pool.workers == len(os.sched_getaffinity(0))
    finally:
        render_pool.shutdown()
