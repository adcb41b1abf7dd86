"""Small PDFs written by hand for tests: plain pages, and pages whose drawing is hostile (millions of strokes)."""

from __future__ import annotations

import random
import zlib


def pdf_bytes(contents: list[bytes], *, width_pt: int = 595, height_pt: int = 842) -> bytes:
    """A PDF with one page per content stream (each Flate-compressed), with a correct cross-reference table."""
    count = len(contents)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(count)), count),
    ]
    for index, content in enumerate(contents):
        stream = zlib.compress(content, 9)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R >>"
            % (width_pt, height_pt, 4 + 2 * index)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream))
    return minimal_pdf(objects, version=b"1.4")


def plain_pdf(pages: int = 1) -> bytes:
    """`pages` pages, each with one short black line: cheap to render."""
    return pdf_bytes([b"0 0 0 RG 2 w 50 50 m 500 700 l S"] * pages)


def stroke_bomb_pdf(lines: int = 3_000_000, pages: int = 1, seed: int = 7) -> bytes:
    """Pages of `lines` separately stroked random lines: a few hundred KB compressed, minutes of PDFium time and
    hundreds of MB in the renderer (each path is kept until its stroke)."""
    rng = random.Random(seed)
    # A small pool of segments repeated: Flate compresses repeats, so the file stays small.
    segments = [b"%d %d m %d %d l S\n" % tuple(rng.randrange(600) for _ in range(4)) for _ in range(64)]
    content = b"0.5 w\n" + b"".join(segments[i % 64] for i in range(lines))
    return pdf_bytes([content] * pages)


def minimal_pdf(objects: list[bytes], trailer: bytes = b"", *, version: bytes = b"1.7") -> bytes:
    """A PDF whose objects are numbered from 1 (1 is the catalog), with a correct xref table."""
    out = bytearray(b"%%PDF-%s\n" % version)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)
