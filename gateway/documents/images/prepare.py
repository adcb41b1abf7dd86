"""Image intake for the document endpoints: decode, bring to a model-input size, encode as PNG.

    prepare_image(bytes, policy) ─► decode_image ─► within the bounds? ─ yes ─► encode_png, padded white
                                                        │ no                    to the next multiple of the factor
                                                        └─► smart_resize ─► resize (bicubic) ─► encode_png

The gateway sends each page ALREADY at a size the model's processor keeps as it is (a multiple of the patch
factor inside [min_pixels, max_pixels] is a fixed point of smart_resize), so the server's own resize is a
no-op and the boxes the model answers with map back to the client's pixels exactly (`PageGeometry`). The
original RGB image is kept for overlays and Picture crops.

Padding (PAD_WITHIN_BOUNDS) replaced the resize for every page whose padded size fits the model's bounds:
the page goes out pixel for pixel, with a white strip under `factor` px on the right and bottom, where a
resample moved every pixel by up to half a factor's worth of scale. No interpolation, so nothing to compute
and nothing blurred; box mapping is the identity (clamped to the page). On the 1700x2250 JPEG fixture
(`python -m bench.document_cpu`, CPU time, machine shared at load 13 on 2 cores): prepare 43 ms padded
(decode 11, encode 30) against 103 ms resized; PNG 1.28 MB against 1.48 MB; fidelity exact against 32.2 dB.
Encoding rows in blocks of 128 instead of one joined copy of the page took another ~12 ms off. Pages outside
the bounds (over the pixel cap, under the minimum) are still resized as below. JPEG `draft` decoding (DCT
scaling by 1/2, 1/4, 1/8) would only help pages at least twice the model's cap, which are rare at 200 DPI.

Measured with `bench/image_prep.py --tables` on the 2-vCPU development machine: a generated 1700x2250 document
page (black text lines, grey boxes) as a quality-90 JPEG, 1708x2240 model input under dots.ocr's policy.
Medians; this VM is shared and the same run varied by up to 1.8x, so the quietest runs are quoted.

    step                                  ms     PNG MB   server-side PNG decode ms
    decode JPEG (libjpeg-turbo)           12-13
    EXIF + RGB (upright RGB JPEG)         0.0
    resize BILINEAR / BICUBIC / LANCZOS   27-29 / 40-41 / 54
    Pillow PNG compress_level 0           58     11.48    17
    Pillow PNG compress_level 1           99     1.51     30
    Pillow PNG compress_level 2           103    1.46     30
    Pillow PNG compress_level 3           121    1.40     30
    Pillow PNG compress_level 4           138    1.92     34
    Pillow PNG compress_level 5           158    1.88     34
    Pillow PNG compress_level 6           215    1.81     32   (Pillow's default, and what dots.ocr sends)
    Pillow PNG compress_level 7           270    1.78     32
    Pillow PNG compress_level 8           461    1.77     32
    Pillow PNG compress_level 9           956    1.76     32
    Pillow PNG optimize=True              970    1.76     32
    encode_png level 0                    15-17  11.48    6
    encode_png level 1                    45-51  1.45     20
    encode_png level 2                    48-53  1.40     19
    prepare_image end to end              ~105-118 (decode + BICUBIC + encode_png level 1)

Choices:
* BICUBIC. It is the filter the Qwen2-VL image processor resizes with and PIL's default, which dots.ocr's own
  client pre-resize uses, so the model sees the very pixels it would get had the server resized the original.
  Quality on this page, as PSNR after resizing to the model size and back: BILINEAR 27.7 dB, BICUBIC 29.7 dB,
  LANCZOS 30.4 dB. LANCZOS buys 0.7 dB for +35 % time and pixels the model was never given; BILINEAR saves
  13 ms and loses 2 dB, i.e. blurs the strokes of small text.
* `encode_png` instead of Pillow's encoder. Pillow tries four PNG row filters on every row at every level, which
  is most of its cost even when storing (58 ms at level 0); filter None on every row compresses a document
  page as well (1.45 vs 1.51 MB at level 1) in half the time.
* zlib level 1: the fastest setting that compresses. Level 0 would save ~34 ms here but sends 8x the bytes
  (15 MB of base64 for this page, 45 MB at dots.ocr's pixel cap); base64 of that costs the gateway 14 ms
  instead of 1 ms, and vLLM's API process 31 ms instead of 4 ms to decode, more than the 14 ms it saves
  inflating. Total CPU is a wash; level 0 only moves it into the one vLLM process that cannot be scaled out,
  and multiplies memory and bytes (some deployments put vLLM on another host). Levels 2-9 and `optimize`
  buy at most 4 % fewer bytes for 1.1-20x the time.
* Not met: the 60 ms target for decode + resize + encode. On this CPU the bicubic resize (40 ms) and zlib
  level 1 (45 ms) are each most of it. Level 0 brings the page to ~70 ms, BILINEAR + level 0 to ~57 ms.
"""

from __future__ import annotations

import base64
import contextlib
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from isal import isal_zlib
from PIL import Image

from gateway.documents.images.decode import (
    ACCEPTED_FORMATS,
    ImageRejected,
    ImageTooLarge,
    decode_image,
    pil_bomb_check_may_fire,
    pil_warnings_contained,
)
from gateway.documents.images.geometry import Box, PageGeometry, fits_policy, smart_resize
from gateway.documents.images.reduced_decode import decode_reduced
from gateway.models.registry import ImagePolicy

__all__ = [
    "ACCEPTED_FORMATS",
    "PAD_WITHIN_BOUNDS",
    "PNG_COMPRESS_LEVEL",
    "RESAMPLE",
    "Box",
    "ImageRejected",
    "ImageTooLarge",
    "PageGeometry",
    "PreparedImage",
    "crop_png_data_url",
    "decode_image",
    "decode_model_sized",
    "encode_png",
    "padded_size",
    "prepare_decoded",
    "prepare_image",
    "prepare_model_sized",
    "smart_resize",
]

RESAMPLE: Final = Image.Resampling.BICUBIC
PNG_COMPRESS_LEVEL: Final = 1
PAD_WITHIN_BOUNDS: Final = True
_WHITE: Final = 255
_ROWS_PER_BLOCK: Final = 128

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES: Final = {"L": 0, "RGB": 2}  # 8 bits per sample, no palette, no alpha
_IDAT_BYTES: Final = 1 << 20  # any chunk size is valid; 1 MiB keeps each chunk's CRC pass short


@dataclass(frozen=True)
class PreparedImage:
    """One page ready for the model: the original for overlays and crops, the model-size PNG to send."""

    image: Image.Image  # the original RGB image (decoded, EXIF-rotated)
    geometry: PageGeometry
    png: bytes  # the image resized to geometry.model, PNG-encoded

    def data_url(self) -> str:
        """The model-size PNG as a `data:` URL for a chat message's image_url part."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def prepare_image(
    data: bytes, policy: ImagePolicy, *, param: str, max_pixels: int, pad: bool = PAD_WITHIN_BOUNDS
) -> PreparedImage:
    """Decode a client's image and produce the PNG the model gets, at exactly its input size.

    `max_pixels` is the gateway's decode limit (ImageTooLarge above it); `policy` is the model's. Raises
    ImageRejected when the image is unusable, including an aspect ratio the model's input sizes cannot hold
    (only possible with a coarse `factor`: a 100x6000 receipt for Phi-3.5-vision, whose 336 px tiles cap at 16).
    CPU-bound (about 0.1 s for a 4 MP page here): call it from a worker thread, not the event loop.
    """
    return prepare_decoded(decode_image(data, param=param, max_pixels=max_pixels), policy, param=param, pad=pad)


def decode_model_sized(
    data: bytes, policy: ImagePolicy, *, param: str, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    """An uploaded image decoded straight toward its model-input size: the image at that size and the upright
    size of the upload (what boxes are reported in), for `prepare_model_sized`. Decoding reduced (JPEG DCT
    scaling, a whole-factor reduce for others) bounds the memory of a huge upload the model would shrink anyway.
    A size the policy cannot hold is decoded in full and resized by `prepare_decoded`'s rules (its usual 400).
    A page within the model's bounds is decoded in full and comes back at its own size: it is sent padded.
    """

    def fit(size: tuple[int, int]) -> tuple[int, int] | None:
        if PAD_WITHIN_BOUNDS and padded_size(size[0], size[1], policy) is not None:
            return size  # it goes out as it is, padded to whole patches (prepare_decoded): every pixel is needed
        try:
            model_height, model_width = smart_resize(size[1], size[0], policy)
        except ValueError:  # an aspect ratio smart_resize refuses
            return None
        return (model_width, model_height) if fits_policy(model_height, model_width, policy) else None

    image, original = decode_reduced(data, param=param, max_pixels=max_pixels, fit=fit)
    target = fit(original)
    if target is None:
        prepared = prepare_decoded(image, policy, param=param)  # raises: too elongated for this model
        return prepared.image, original
    return (image if image.size == target else image.resize(target, RESAMPLE)), original


def prepare_model_sized(image: Image.Image, original_size: tuple[int, int]) -> PreparedImage:
    """A page already drawn at its model-input size (a PDF page rendered straight to it): only encode it.

    `image` stands in for the original too, so it must not be used for overlays or Picture crops, which are
    in original pixels: callers that need those render the page at its own size instead.
    """
    return PreparedImage(image=image, geometry=PageGeometry(original_size, image.size), png=encode_png(image))


def padded_size(width: int, height: int, policy: ImagePolicy) -> tuple[int, int] | None:
    """(width, height) rounded up to multiples of the factor, if that is a model-input size; else None."""
    factor = policy.factor
    padded_width, padded_height = -(-width // factor) * factor, -(-height // factor) * factor
    return (padded_width, padded_height) if fits_policy(padded_height, padded_width, policy) else None


def prepare_decoded(
    image: Image.Image, policy: ImagePolicy, *, param: str, pad: bool = PAD_WITHIN_BOUNDS
) -> PreparedImage:
    """`prepare_image` for an RGB image already decoded (a rendered PDF page, a TIFF frame)."""
    width, height = image.size
    padded = padded_size(width, height, policy) if pad else None
    if padded is not None:
        geometry = PageGeometry(image.size, padded, content=image.size)
        return PreparedImage(image=image, geometry=geometry, png=encode_png(image, pad_to=padded))
    model_height, model_width = smart_resize(height, width, policy)
    if not fits_policy(model_height, model_width, policy):
        raise ImageRejected(
            f"`{param}` is {width}x{height}: too elongated for this model, whose input must be a multiple of "
            f"{policy.factor} px per side with {policy.min_pixels:,} to {policy.max_pixels:,} pixels"
            + (f", no side over {policy.max_side:,} px" if policy.max_side is not None else ""),
            param=param,
        )
    model_size = (model_width, model_height)
    model_image = image if model_size == image.size else image.resize(model_size, RESAMPLE)
    return PreparedImage(image=image, geometry=PageGeometry(image.size, model_size), png=encode_png(model_image))


def crop_png_data_url(prepared: PreparedImage, bbox_original: Box) -> str:
    """A region of the original page (clamped to it) as a PNG `data:` URL, for Picture crops in Markdown.

    Raises ValueError when the clamped box is empty (x2 <= x1 or y2 <= y1): the caller decides whether a
    degenerate box from the model is skipped or reported.
    """
    width, height = prepared.image.size
    x1, y1, x2, y2 = bbox_original
    box = (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"empty crop: {bbox_original} inside a {width}x{height} page")
    # Image.crop re-runs PIL's bomb check on the crop size; the page already passed our own limit.
    crop_size = (box[2] - box[0], box[3] - box[1])
    with pil_warnings_contained() if pil_bomb_check_may_fire(crop_size) else contextlib.nullcontext():
        crop = prepared.image.crop(box)
    return "data:image/png;base64," + base64.b64encode(encode_png(crop)).decode("ascii")


def encode_png(
    image: Image.Image, *, compress_level: int = PNG_COMPRESS_LEVEL, pad_to: tuple[int, int] | None = None
) -> bytes:
    """An 8-bit RGB or L image as a PNG file: filter None on every row, one zlib stream (see module notes).

    `compress_level` is ISA-L's (0-3): its deflate writes the same zlib format as zlib, several times faster.
    `pad_to` (width, height), at least the image's size, adds white columns on the right and white rows at the
    bottom while the scanlines are joined, without building a padded copy of the image.

    A PNG is the signature, an IHDR chunk, the zlib-compressed scanlines in IDAT chunks and an IEND chunk;
    each scanline is one filter-type byte (0 = None) followed by the row's raw samples.
    """
    colour_type = _PNG_COLOUR_TYPES.get(image.mode)
    if colour_type is None:
        raise ValueError(f"encode_png takes RGB or L images, not {image.mode}")
    width, height = image.size
    bands = len(image.getbands())
    out_width, out_height = pad_to or (width, height)
    if out_width < width or out_height < height:
        raise ValueError(f"pad_to {pad_to} is smaller than the {width}x{height} image")
    stride = width * bands
    right = bytes([_WHITE]) * ((out_width - width) * bands)
    raw = memoryview(image.tobytes())
    compressor = isal_zlib.compressobj(compress_level)
    # Each scanline is a None filter byte, the row and its white right margin. Rows go to the compressor in
    # blocks: one joined copy of the whole page cost more than compressing it (22 vs 10 ms, 1700x2250 RGB).
    separator = right + b"\x00"
    block = stride * _ROWS_PER_BLOCK
    pieces = []
    for start in range(0, len(raw), block):
        chunk = raw[start : start + block]
        rows = [chunk[row : row + stride] for row in range(0, len(chunk), stride)]
        pieces.append(compressor.compress(b"\x00" + separator.join(rows) + right))
    bottom = (b"\x00" + bytes([_WHITE]) * (out_width * bands)) * (out_height - height)
    body = b"".join(pieces) + compressor.compress(bottom)
    idat = memoryview(body + compressor.flush())
    parts: list[bytes | memoryview] = [_PNG_SIGNATURE]
    _append_chunk(parts, b"IHDR", struct.pack(">IIBBBBB", out_width, out_height, 8, colour_type, 0, 0, 0))
    for start in range(0, len(idat), _IDAT_BYTES):
        _append_chunk(parts, b"IDAT", idat[start : start + _IDAT_BYTES])
    _append_chunk(parts, b"IEND", b"")
    return b"".join(parts)


def _append_chunk(parts: list[bytes | memoryview], kind: bytes, body: bytes | memoryview) -> None:
    """Length, type, data, and the CRC-32 of type + data: one PNG chunk, appended without copying the data."""
    parts += [struct.pack(">I", len(body)), kind, body, struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))]
