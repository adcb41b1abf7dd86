"""The model's smart-resize rule and exact bbox arithmetic between original and model-input pixels.

Layout and grounding models answer in the pixels of the image they were given (after the server's resize),
never in the client's pixels. The gateway resizes the page itself, to exactly the size the server would pick,
so the server's own resize is a no-op and a box maps between the two spaces with one scale per axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.documents.images.decode import MAX_ASPECT_RATIO
from gateway.models.registry import ImagePolicy

Box = tuple[int, int, int, int]


def smart_resize(height: int, width: int, policy: ImagePolicy) -> tuple[int, int]:
    """(height, width) of the model input for a heightxwidth image: the Qwen2-VL rule (dots-ocr.md §3).

    Each side is rounded to the nearest multiple of `factor` (at least one factor). If that area is over
    `max_pixels`, both sides are scaled by β = √(area / max_pixels) and floored to multiples; if under
    `min_pixels`, scaled up by β = √(min_pixels / area) and ceiled, then capped again if that overshoots.
    The float expressions are those of the reference implementation, so the result is identical to it
    (Python's round() halves to even, as theirs does).

    Any result inside [min_pixels, max_pixels] is a fixed point: every variant of the rule (vLLM, HF, dots.ocr)
    maps it to itself, which is why sending an image of this size makes the server's resize a no-op.

    With `max_side` (a processor that also caps the longer side: Pixtral's `longest_edge`, LightOnOCR's 1540 px),
    a result whose longer side is over it is scaled by the larger of the two betas instead, so both bounds hold;
    Pixtral keeps any image within its longest edge whose sides are multiples of its 28 px patch.
    Raises ValueError for a side below 1 or an aspect ratio over 200 (decode_image rejects those first).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image sides must be positive, got {height}x{width}")
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise ValueError(f"aspect ratio must not exceed {MAX_ASPECT_RATIO}, got {height}x{width}")
    factor, min_pixels, max_pixels = policy.factor, policy.min_pixels, policy.max_pixels
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
        if h_bar * w_bar > max_pixels:  # only when min and max are within a factor step of each other
            beta = math.sqrt(h_bar * w_bar / max_pixels)
            h_bar = max(factor, math.floor(h_bar / beta / factor) * factor)
            w_bar = max(factor, math.floor(w_bar / beta / factor) * factor)
    max_side = policy.max_side
    if max_side is not None and max(h_bar, w_bar) > max_side:
        beta = max(max(height, width) / max_side, math.sqrt(height * width / max_pixels))
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    return h_bar, w_bar


def fits_policy(height: int, width: int, policy: ImagePolicy) -> bool:
    """Whether a size is a model-input size: multiples of `factor` with the area inside the pixel range and the
    longer side within `max_side`.

    smart_resize's results always fit for dots.ocr's and the Qwen policies; for a coarse factor (Phi's 336,
    the square-only 1024 and 378 policies) an extreme aspect ratio yields a size outside the range.
    """
    factor = policy.factor
    return (
        height % factor == 0
        and width % factor == 0
        and policy.min_pixels <= height * width <= policy.max_pixels
        and height >= factor
        and width >= factor
        and (policy.max_side is None or max(height, width) <= policy.max_side)
        # Rounding can push a ratio just under 200 over it (29x5615 -> 28x5628), and the server's processor
        # refuses such an input: catch it here as a 4xx instead of a failure upstream.
        and max(height, width) <= MAX_ASPECT_RATIO * min(height, width)
    )


@dataclass(frozen=True)
class PageGeometry:
    """Sizes of one page in the client's pixels and in the model's, and the box mapping between them.

    All arithmetic is on integers, so it is exact: no float rounding can move a coordinate across an integer.
    A round trip to_model -> to_original never overshoots and falls short by less than s + ½ px, s being
    original / model on that axis: at most 1 px for any page up to dots.ocr's pixel cap (s < 1.5), more only
    where a downscaled model pixel covers several original ones (the proof is in tests/gateway/test_images.py).
    """

    original: tuple[int, int]  # (width, height) of the decoded, EXIF-rotated image
    model: tuple[int, int]  # (width, height) of the image the model gets
    # Where the page sits in the model's image, from its top-left corner: None when the page fills it (resized),
    # else the page's own size (sent unresampled, padded white to `model` on the right and bottom).
    content: tuple[int, int] | None = None

    @property
    def _page(self) -> tuple[int, int]:
        """(width, height) the page covers in model-input pixels."""
        return self.model if self.content is None else self.content

    def to_model(self, bbox: Box) -> Box:
        """Original px -> model-input px: int(c · model / original) per axis, as dots.ocr's grounding path.

        Truncates toward zero like their `int(...)`, but computed exactly (c · model // original) instead of
        through a float scale, which can land one below an exact integer. Callers validate that the box lies
        inside the image; coordinates outside it scale linearly and are not clamped here.
        """
        (ow, oh), (mw, mh) = self.original, self._page
        x1, y1, x2, y2 = bbox
        return (_trunc_div(x1 * mw, ow), _trunc_div(y1 * mh, oh), _trunc_div(x2 * mw, ow), _trunc_div(y2 * mh, oh))

    def to_original(self, bbox: Box) -> Box:
        """Model px -> original px: c · original / model rounded to nearest (halves up), clamped to the image.

        Models sometimes answer with coordinates past the edge of their input (or, on a padded page, in the
        white margin); the clamp keeps every result in [0, width] x [0, height] so crops and overlays never
        index outside the page.
        """
        (ow, oh), (mw, mh) = self.original, self._page
        x1, y1, x2, y2 = bbox
        return (
            _clamp(_round_div(x1 * ow, mw), ow),
            _clamp(_round_div(y1 * oh, mh), oh),
            _clamp(_round_div(x2 * ow, mw), ow),
            _clamp(_round_div(y2 * oh, mh), oh),
        )


def _trunc_div(numerator: int, denominator: int) -> int:
    """numerator / denominator truncated toward zero (Python's // floors, int() of a float truncates)."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves up: floor((2n + d) / 2d)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _clamp(value: int, upper: int) -> int:
    return min(max(value, 0), upper)
