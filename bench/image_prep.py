"""`python bench/image_prep.py`: milliseconds per step of the gateway's image intake for one document page.

The page is generated (no fixture): 1700x2250, white, ~60 lines of black text drawn with ImageDraw and a few
grey boxes, saved as a quality-90 JPEG, the size and kind of dots.ocr's demo_image1.jpg. It goes through the
same steps as `gateway.documents.images.prepare.prepare_image` with the dots.ocr policy (model input 1708x2240):

    decode        sniff + header + size check + pixel decode (`.load()`)
    exif/convert  EXIF orientation + mode -> RGB
    resize        to the smart_resize size, with gateway.documents.images.prepare.RESAMPLE
    encode        gateway.documents.images.prepare.encode_png

and the whole `prepare_image` once more end to end. `--tables` adds the measurements the encoder and filter
choices rest on: every Pillow compress_level, `optimize`, `encode_png` levels, and the resize filters.
Medians over `--rounds` runs (default 15); the machine is shared, so expect ±25 % between invocations.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from PIL import Image, ImageDraw, ImageFont

from gateway.documents.images.decode import (
    _apply_exif_orientation,
    _check_size,
    _load_pixels,
    _open_header,
    _sniff,
    to_rgb,
)
from gateway.documents.images.prepare import RESAMPLE, encode_png, prepare_image, smart_resize
from gateway.models.registry import ImagePolicy

DOTS_OCR = ImagePolicy(min_pixels=3136, max_pixels=11_289_600, factor=28)
MAX_PIXELS = 50_000_000
PAGE_SIZE = (1700, 2250)

T = TypeVar("T")


def document_page(seed: int = 1) -> Image.Image:
    """A synthetic scanned page: black words on white in lines, two grey figure boxes."""
    rng = random.Random(seed)
    page = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=22)
    for box in ((150, 300, 800, 700), (900, 1500, 1550, 1900)):
        draw.rectangle(box, fill=(200, 200, 200), outline=(90, 90, 90), width=3)
    for y in range(120, 2150, 34):
        words = ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(14))
        draw.text((150, y), " ".join(words), fill="black", font=font)
    return page


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def timed(step: Callable[[], T], rounds: int) -> tuple[float, T]:
    """Median milliseconds of `rounds` calls (after one warm-up), and the last result."""
    result = step()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), result


def decode_only(data: bytes) -> Image.Image:
    """decode_image's first half: everything up to and including the pixel decode."""
    image_format = _sniff(data, "file")
    image = _open_header(data, image_format, "file")
    _check_size(image.size, "file", MAX_PIXELS)
    _load_pixels(image, image_format, "file")
    return image


def upright_rgb(image: Image.Image) -> Image.Image:
    """decode_image's second half (mutates `image` only when an EXIF orientation is set)."""
    _apply_exif_orientation(image)
    return to_rgb(image, param="file")


def pillow_png(image: Image.Image, **options: int | bool) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def steps(data: bytes, rounds: int) -> None:
    decode_ms, decoded = timed(lambda: decode_only(data), rounds)
    convert_ms, rgb = timed(lambda: upright_rgb(decoded), rounds)
    model_height, model_width = smart_resize(rgb.height, rgb.width, DOTS_OCR)
    resize_ms, resized = timed(lambda: rgb.resize((model_width, model_height), RESAMPLE), rounds)
    encode_ms, png = timed(lambda: encode_png(resized), rounds)
    total_ms, _ = timed(lambda: prepare_image(data, DOTS_OCR, param="file", max_pixels=MAX_PIXELS), rounds)
    print(f"page {rgb.width}x{rgb.height} JPEG {len(data) / 1e6:.2f} MB -> model input {model_width}x{model_height}")
    print(f"{'step':<14}{'ms':>8}")
    for name, ms in (("decode", decode_ms), ("exif/convert", convert_ms), ("resize", resize_ms), ("encode", encode_ms)):
        print(f"{name:<14}{ms:8.1f}")
    print(f"{'sum of steps':<14}{decode_ms + convert_ms + resize_ms + encode_ms:8.1f}")
    print(f"{'prepare_image':<14}{total_ms:8.1f}   PNG {len(png) / 1e6:.2f} MB ({RESAMPLE.name}, encode_png)")


def tables(data: bytes, rounds: int) -> None:
    rgb = upright_rgb(decode_only(data))
    model_height, model_width = smart_resize(rgb.height, rgb.width, DOTS_OCR)
    print(f"\n{'resize filter':<24}{'ms':>8}")
    for resample in (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS):
        ms, _ = timed(partial(rgb.resize, (model_width, model_height), resample), rounds)
        print(f"{resample.name:<24}{ms:8.1f}")
    resized = rgb.resize((model_width, model_height), RESAMPLE)
    print(f"\n{'PNG encoder':<24}{'ms':>8}{'MB':>8}{'decode ms':>11}")
    # Slow settings get 3 runs: their medians are stable and a full run would take minutes.
    candidates: list[tuple[str, Callable[[], bytes], int]] = [
        (f"Pillow level {level}", partial(pillow_png, resized, compress_level=level), rounds if level < 4 else 3)
        for level in range(10)
    ]
    candidates.append(("Pillow optimize", partial(pillow_png, resized, optimize=True), 3))
    candidates += [
        (f"encode_png level {level}", partial(encode_png, resized, compress_level=level), rounds) for level in (0, 1, 2)
    ]
    for name, encode, runs in candidates:
        ms, png = timed(encode, runs)
        decode_ms, _ = timed(partial(decode_png, png), 5)
        print(f"{name:<24}{ms:8.1f}{len(png) / 1e6:8.2f}{decode_ms:11.1f}")


def decode_png(png: bytes) -> None:
    """What the server does with the bytes: open and decode (the 'decode ms' column)."""
    Image.open(io.BytesIO(png)).load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="timed runs per step (median reported)")
    parser.add_argument("--tables", action="store_true", help="also time every PNG setting and resize filter")
    args = parser.parse_args()
    data = jpeg_bytes(document_page())
    steps(data, args.rounds)
    if args.tables:
        tables(data, args.rounds)


if __name__ == "__main__":
    main()
