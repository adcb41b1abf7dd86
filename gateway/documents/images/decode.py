"""Untrusted image bytes -> one upright RGB image, or a 400/413 that names the problem.

The document endpoints take images from clients, so everything here assumes hostile input:

* The format is sniffed from the file signature, and only the six accepted formats' decoders are ever run
  (never EPS, PDF or any other PIL plugin reachable through `Image.open`).
* The pixel count is read from the header and checked against the gateway's own `max_pixels` before a single
  pixel is decoded. `Image.open` is bypassed because it runs PIL's global `MAX_IMAGE_PIXELS` check first,
  which warns (an exception under pytest's `-W error`, a log line in production) or raises by its own rules.
* PIL's own bomb check still runs inside a few plugins (a GIF first frame larger than its canvas; GIF, TIFF and
  MPO loading), always on sizes this module has already bounded. Those calls run with its warning, and PIL's
  warnings about junk metadata, dropped, so none can leak (and its hard error becomes a 413).
* Pixels are decoded with `.load()` inside a `try`, so a truncated or corrupt file is a 400, never a 500.
"""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Final, cast

from PIL import (
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from gateway.errors import InvalidRequest

# smart_resize (Qwen2-VL) refuses images whose long side exceeds 200 times the short one.
MAX_ASPECT_RATIO: Final = 200

ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "BMP", "TIFF", "WebP", "GIF")


class ImageRejected(InvalidRequest):
    """The client's image cannot be used: not an image, unsupported, corrupt, truncated or badly shaped (400)."""


class ImageTooLarge(ImageRejected):
    """The image declares more pixels than the gateway decodes (413): the decompression-bomb guard."""

    status_code = 413


# PIL's opener per accepted format: each reads the header only; pixels are decoded by `.load()`.
_OPENERS: Final[dict[str, Callable[[IO[bytes]], ImageFile.ImageFile]]] = {
    "JPEG": JpegImagePlugin.jpeg_factory,  # returns an MpoImageFile for multi-picture JPEGs (first frame used)
    "PNG": PngImagePlugin.PngImageFile,
    "BMP": BmpImagePlugin.BmpImageFile,
    "TIFF": TiffImagePlugin.TiffImageFile,
    "WebP": WebPImagePlugin.WebPImageFile,
    "GIF": GifImagePlugin.GifImageFile,
}

# Loaders that call PIL's own bomb check on sizes read from the file (GIF frame extents, TIFF tiles, MPO frames).
_RECHECKING_LOADERS: Final = frozenset({"GIF", "TIFF", "MPO"})

_ACCEPTED_SIGNATURES: Final = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)

# Formats clients plausibly send by mistake, named so the error says what was received.
_OTHER_SIGNATURES: Final = (
    (b"%PDF-", "PDF (send each page as an image)"),
    (b"%!PS", "PostScript"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"PK\x03\x04", "ZIP"),
)

# Integer modes hold 16- or 32-bit samples; PIL's convert("L") clips them at 255 instead of scaling.
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "RGBa"})

# catch_warnings() swaps the process-global filter list and is not thread-safe before Python 3.14; decoding
# runs in worker threads, so overlapping swaps could restore the wrong list. Header parsing and EXIF hold it
# for microseconds; pixel decoding holds it only in the rare case PIL's own check could fire (see below).
_WARNINGS_LOCK = threading.Lock()


def decode_image(data: bytes, *, param: str, max_pixels: int) -> Image.Image:
    """Decode a client's image file into an upright RGB image.

    Accepts JPEG, PNG, BMP, TIFF, WebP and GIF (first frame). Raises ImageTooLarge (413) when the header
    declares more than `max_pixels` pixels, and ImageRejected (400) for anything else wrong; both carry
    `param`, the form or JSON field the bytes came from.
    """
    image_format = _sniff(data, param)
    if image_format == "GIF" and (canvas := _gif_canvas(data)) is not None:
        _check_size(canvas, param, max_pixels)  # PIL grows the canvas to the first frame while opening
    image = _open_header(data, image_format, param)
    _check_size(image.size, param, max_pixels)
    _load_pixels(image, image_format, param)
    _apply_exif_orientation(image)
    return to_rgb(image, param=param)


def to_rgb(image: Image.Image, *, param: str) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white, wide greyscale is scaled to 8 bits."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    try:
        if image.mode in _SIXTEEN_BIT_MODES:
            # Full scale is 65535 -> 255, i.e. divide by 257; +0.5 rounds to nearest.
            return image.point(lambda v: v / 257 + 0.5, "L").convert("RGB")
        if image.mode in ("I", "F"):
            return _wide_to_l(image).convert("RGB")
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            return _on_white(image)
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX
    except ValueError as exc:  # a mode PIL cannot convert (e.g. premultiplied "La")
        raise ImageRejected(f"`{param}` has an unsupported colour mode {image.mode}: {exc}", param=param) from exc


def _sniff(data: bytes, param: str) -> str:
    """The accepted format `data` starts with, or a rejection naming what it is instead."""
    if not data:
        raise ImageRejected(f"`{param}` is empty (0 bytes), not an image", param=param)
    for signature, name in _ACCEPTED_SIGNATURES:
        if data.startswith(signature):
            return name
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    # Documents also take PDFs and multi-page TIFFs (sources/pages.py sniffs those before an image is decoded).
    accepted = "PDF, " + ", ".join(ACCEPTED_FORMATS)
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            raise ImageRejected(f"`{param}` has unsupported format {name}; send one of {accepted}", param=param)
    if data[4:8] == b"ftyp":  # ISO media: HEIC/AVIF photos from phones, or video
        brand = data[8:12].decode("ascii", "replace").strip()
        raise ImageRejected(
            f"`{param}` has unsupported format {brand!r} (HEIF/AVIF/MP4); send one of {accepted}", param=param
        )
    raise ImageRejected(f"`{param}` is not an image: its bytes match no image format ({accepted})", param=param)


def _open_header(data: bytes, image_format: str, param: str) -> ImageFile.ImageFile:
    """Parse the header only (no pixels yet) with the sniffed format's own PIL plugin.

    Openers do not run PIL's bomb check (Image.open does, after them), except GIF's on a first frame larger
    than the canvas, which decode_image has already bounded itself: the warning is dropped. PIL's hard error
    (twice its threshold, ~179 MP) can only be met with a gateway limit configured above it.
    """
    try:
        with pil_warnings_contained():
            return _OPENERS[image_format](io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"`{param}` declares too many pixels: {exc}", param=param) from exc
    except Exception as exc:  # any failure parsing untrusted bytes is the client's 400, not our 500
        raise ImageRejected(
            f"`{param}` is not a valid {image_format} file (truncated or corrupt header)", param=param
        ) from exc


def _gif_canvas(data: bytes) -> tuple[int, int] | None:
    """The canvas PIL will give a GIF: its logical screen, grown to hold the first frame's extent.

    A 1x1 GIF may declare a 65535x65535 first frame; reading that from the blocks ourselves keeps the gateway's
    own limit in charge. None when the blocks cannot be walked (PIL then rejects the file itself).
    """
    if len(data) < 13:
        return None
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    offset = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)  # skip the global colour table
    while offset < len(data):
        if data[offset] == 0x2C:  # image descriptor: left, top, width, height of the first frame
            if offset + 9 > len(data):
                return None
            left, top, frame_width, frame_height = struct.unpack_from("<HHHH", data, offset + 1)
            return max(width, left + frame_width), max(height, top + frame_height)
        if data[offset] != 0x21:  # not an extension: the trailer, so there is no frame
            break
        offset += 2  # extension introducer and label, then length-prefixed sub-blocks up to an empty one
        while offset < len(data) and data[offset]:
            offset += data[offset] + 1
        offset += 1
    return width, height


def _check_size(size: tuple[int, int], param: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"`{param}` has no pixels: its header declares {width}x{height}", param=param)
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"`{param}` is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}", param=param
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageRejected(
            f"`{param}` is {width}x{height}: an aspect ratio over {MAX_ASPECT_RATIO}:1 cannot be resized for the model",
            param=param,
        )


def _load_pixels(image: ImageFile.ImageFile, image_format: str, param: str) -> None:
    """Decode the pixels. The GIF/TIFF/MPO loaders re-run PIL's bomb check, but only on sizes no larger than
    the image's own (frame, disposal and tile extents), which _check_size already bounded: their warning is
    dropped. Only a limit configured above twice PIL's own (~179 MP) would meet PIL's hard error first.
    """
    # MPO is reported by PIL as its own format, but it arrives through the JPEG opener.
    rechecks = image.format in _RECHECKING_LOADERS and pil_bomb_check_may_fire(image.size)
    try:
        with pil_warnings_contained() if rechecks else contextlib.nullcontext():
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"`{param}` declares too many pixels: {exc}", param=param) from exc
    except Exception as exc:  # truncated data, broken compression streams, bad tables: all the client's 400
        raise ImageRejected(f"`{param}` is a truncated or corrupt {image_format} image: {exc}", param=param) from exc


def _apply_exif_orientation(image: Image.Image) -> None:
    """Rotate/flip to the EXIF orientation (in place, so the common no-tag case copies nothing)."""
    try:
        with pil_warnings_contained():
            ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # EXIF is untrusted metadata: a broken block costs its orientation, not the request
        return


def _wide_to_l(image: Image.Image) -> Image.Image:
    """32-bit integer or float greyscale -> L, scaled from the smallest usual range holding the data.

    [0, 1] (float only) and [0, 255] and [0, 65535] are the ranges such files use; anything else is stretched
    from its own minimum and maximum, so the page is visible instead of clipped to black or white.
    """
    # A single-band image's extrema are one (min, max) pair of numbers.
    low, high = cast("tuple[float, float]", image.getextrema())
    if low >= 0 and high <= 1 and image.mode == "F":
        low, high = 0, 1
    elif low >= 0 and high <= 255:
        low, high = 0, 255
    elif low >= 0 and high <= 65535:
        low, high = 0, 65535
    scale = 255 / (high - low) if high > low else 0.0
    return image.point(lambda v: (v - low) * scale + 0.5, "L" if image.mode == "I" else None).convert("L")


def _on_white(image: Image.Image) -> Image.Image:
    """Composite anything with alpha (or a transparent colour key) onto an opaque white page."""
    rgba = image.convert("RGBA")
    page = Image.new("RGB", rgba.size, (255, 255, 255))
    page.paste(rgba, mask=rgba.getchannel("A"))
    return page


@contextlib.contextmanager
def pil_warnings_contained() -> Iterator[None]:
    """Run PIL code with its warnings dropped: DecompressionBombWarning about a size this module has already
    bounded by its own limit, and warnings about junk metadata in a client's file. Neither is news to us, and
    a warning per request would flood the log (and fail pytest's -W error).
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pil_bomb_check_may_fire(size: tuple[int, int]) -> bool:
    """Whether PIL's own bomb check would warn about an image of `size` (never, with the default 50 MP limit:
    PIL warns from ~89 MP). Read so the lock is taken only when needed, not relied on as a guard.
    """
    threshold = Image.MAX_IMAGE_PIXELS
    return threshold is not None and size[0] * size[1] > threshold
