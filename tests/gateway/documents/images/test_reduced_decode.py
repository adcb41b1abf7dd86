"""Decoding toward the model's size: fewer pixels decoded, the same geometry (boxes still map to the upload)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gateway.documents.images import reduced_decode
from gateway.documents.images.prepare import decode_model_sized, prepare_image
from gateway.models.registry import ImagePolicy

SMALL = ImagePolicy(min_pixels=3136, max_pixels=1_000_000, factor=28)


def _encoded(fmt: str, size: tuple[int, int], **save: object) -> bytes:
    image = Image.new("RGB", size, "white")
    image.paste((0, 0, 0), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_large_upload_decodes_reduced_to_the_same_model_size_and_geometry(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _encoded(fmt, (4000, 3000))
    decoded: list[tuple[int, int]] = []
    to_rgb = reduced_decode.to_rgb

    def spy(image: Image.Image, *, param: str) -> Image.Image:
        decoded.append(image.size)
        return to_rgb(image, param=param)

    monkeypatch.setattr(reduced_decode, "to_rgb", spy)
    image, original = decode_model_sized(data, SMALL, param="file", max_pixels=64_000_000)
    full = prepare_image(data, SMALL, param="file", max_pixels=64_000_000)
    assert original == full.geometry.original == (4000, 3000)
    assert image.size == full.geometry.model
    # Never the whole 12 MP: at most a quarter of it, still at least the model size.
    [size] = decoded
    assert size[0] * size[1] <= 4000 * 3000 // 4
    assert size[0] >= image.size[0]
    assert size[1] >= image.size[1]


def test_an_exif_rotated_jpeg_reports_its_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encoded("JPEG", (4000, 3000), exif=exif.tobytes())
    image, original = decode_model_sized(data, SMALL, param="file", max_pixels=64_000_000)
    full = prepare_image(data, SMALL, param="file", max_pixels=64_000_000)
    assert original == full.geometry.original == (3000, 4000)
    assert image.size == full.geometry.model


def test_an_image_already_small_is_decoded_as_it_is() -> None:
    data = _encoded("PNG", (600, 400))
    image, original = decode_model_sized(data, SMALL, param="file", max_pixels=64_000_000)
    assert original == (600, 400)
    # Within the model's bounds it goes out as it is, padded to whole patches: every pixel, no reduction.
    prepared = prepare_image(data, SMALL, param="file", max_pixels=64_000_000)
    assert image.size == prepared.geometry.content == (600, 400)
