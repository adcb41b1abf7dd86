"""Decoding an upload no larger than the model needs: the memory half of the image-bomb guard.

A 73 KB 7999x7999 PNG is 192 MB of RGB once decoded, and the resize to the model's input size allocated as much
again; a JPEG can be decoded at 1/2 to 1/8 of its size by its own DCT scaling at no cost (`Image.draft`). So
when the caller knows the size it will resize to, a JPEG is decoded at the smallest scale still at least that
size, and other formats are reduced by a whole factor (a box filter) right after decoding, before the colour
conversion and the bicubic resize, and the full-size pixels are freed at once. The checks are `decode.py`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Final

from PIL import Image

from gateway.documents.images.decode import (
    _apply_exif_orientation,
    _check_size,
    _gif_canvas,
    _load_pixels,
    _open_header,
    _sniff,
    pil_warnings_contained,
    to_rgb,
)

_REDUCIBLE_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F"})  # Image.reduce takes these
_QUARTER_TURNS: Final = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def decode_reduced(
    data: bytes, *, param: str, max_pixels: int, fit: Callable[[tuple[int, int]], tuple[int, int] | None]
) -> tuple[Image.Image, tuple[int, int]]:
    """`decode_image`, but decoding no more pixels than needed for `fit(upright size)`, the size the caller will
    resize to (None: decode in full): a JPEG through its DCT scaling (`draft`, 1/2 to 1/8, never below the target),
    other formats reduced by a whole factor right after decoding, before the colour conversion and the resize.
    Returns the upright RGB image, at least the target size, and the upright size of the image as uploaded.
    """
    image_format = _sniff(data, param)
    if image_format == "GIF" and (canvas := _gif_canvas(data)) is not None:
        _check_size(canvas, param, max_pixels)
    image = _open_header(data, image_format, param)
    _check_size(image.size, param, max_pixels)
    width, height = image.size
    turned = _orientation(image) in _QUARTER_TURNS
    upright = (height, width) if turned else (width, height)
    target = fit(upright)
    if target is not None and image_format == "JPEG":
        with contextlib.suppress(Exception):  # a draft the file cannot take: decode it in full
            image.draft("RGB", (target[1], target[0]) if turned else target)
    _load_pixels(image, image_format, param)
    reduced: Image.Image = image
    if target is not None:
        factor = min(
            image.size[0] // (target[1] if turned else target[0]), image.size[1] // (target[0] if turned else target[1])
        )
        if factor >= 2 and image.mode in _REDUCIBLE_MODES:
            reduced = image.reduce(factor)
            image.close()  # the full-size pixels go now, not when the caller is done
    _apply_exif_orientation(reduced)
    return to_rgb(reduced, param=param), upright


def _orientation(image: Image.Image) -> int:
    try:
        with pil_warnings_contained():
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # junk EXIF: no orientation, as _apply_exif_orientation decides too
        return 1
