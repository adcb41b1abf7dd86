"""Image signatures and the cheap whole-file check a chat image gets before it is forwarded to vLLM."""

from __future__ import annotations

import base64

import pytest

from gateway.http.media_types import base64_image_is_whole, image_media_type
from tests.images import image_bytes

FORMATS = [
    ("PNG", "image/png"),
    ("JPEG", "image/jpeg"),
    ("GIF", "image/gif"),
    ("WEBP", "image/webp"),
    ("BMP", "image/bmp"),
]


def _check(data: bytes) -> bool:
    kind = image_media_type(data[:16])
    assert kind is not None
    return base64_image_is_whole(base64.b64encode(data).decode(), kind, data[:18])


@pytest.mark.parametrize(("fmt", "media_type"), FORMATS)
@pytest.mark.parametrize("size", [(32, 24), (640, 480)])
def test_whole_images_pass(fmt: str, media_type: str, size: tuple[int, int]) -> None:
    data = image_bytes(fmt, size)
    assert image_media_type(data[:16]) == media_type
    assert _check(data)


@pytest.mark.parametrize(("fmt", "media_type"), FORMATS)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_file_cut_short_is_caught(fmt: str, media_type: str, keep: float) -> None:
    data = image_bytes(fmt, (640, 480))
    assert not _check(data[: int(len(data) * keep)])


def test_a_jpeg_with_data_after_its_end_marker_is_whole() -> None:
    # Phones append data after EOI (motion photos): that JPEG decodes, so it must not be refused.
    assert _check(image_bytes("JPEG", (64, 48)) + b"\x00" * 5000)


def test_bad_base64_in_the_tail_is_not_whole() -> None:
    payload = base64.b64encode(image_bytes("PNG")).decode()
    assert not base64_image_is_whole(payload[:-8] + "!!!!!!!!", "image/png", b"")


def test_tiff_is_left_to_the_decoder() -> None:
    data = image_bytes("TIFF", (64, 48))
    assert _check(data[: len(data) // 2])
