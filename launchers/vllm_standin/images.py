"""Images in a chat request as vLLM's media loader sees them: decoded in full, errors in vLLM's words.

vLLM opens `data:` URLs with PIL and loads every pixel, so a non-image or a truncated file is a 400
"Failed to load image: <PIL's reason>". With an image policy (the model's resize rule) an image
costs (h/factor)·(w/factor) tokens after resizing, plus the tokens around the placeholder that the
model's chat template adds (Qwen2-VL's <|vision_start|> and <|vision_end|>: 2), as vLLM counts them.
"""

from __future__ import annotations

import base64
import binascii
import io
import math

from PIL import Image

from gateway.models.registry import ImagePolicy

from .request_errors import RequestError


def load_data_url(url: str) -> Image.Image | None:
    """The decoded image of a `data:` URL, None for other URLs (not fetched here); raises RequestError."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise RequestError(400, "Invalid image: only base64 data URLs are supported.", "BadRequestError")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            400, f"Failed to load image from data URL: invalid base64 data ({exc}).", "BadRequestError"
        ) from exc
    try:
        image = Image.open(io.BytesIO(decoded))
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        # PIL's own text, as vLLM passes it on: "cannot identify image file <_io.BytesIO object>" (the
        # address vLLM's message lacks is dropped), "image file is truncated".
        reason = str(exc).split(" (")[0]
        if reason.startswith("cannot identify image file"):
            reason = "cannot identify image file <_io.BytesIO object>"
        raise RequestError(400, f"Failed to load image: {reason}", "BadRequestError") from exc
    return image


def image_prompt_tokens(image: Image.Image | None, policy: ImagePolicy | None, fixed: int, wrapper: int) -> int:
    """Prompt tokens one image costs: by the policy when both are known, else the fixed simulated count."""
    if image is None or policy is None:
        return fixed
    height, width = processor_resize(image.height, image.width, policy)
    return (height // policy.factor) * (width // policy.factor) + wrapper


def processor_resize(height: int, width: int, policy: ImagePolicy) -> tuple[int, int]:
    """The size the model's processor resizes an image to: transformers' Qwen2-VL `smart_resize`, or Pixtral's
    rule for a policy with a longest side (LightOnOCR), which bounds only that side.

    Written here on its own rather than imported from the gateway, so that the stand-in checks the gateway's
    resizing against an independent copy of the server's rule instead of agreeing with it by construction.
    """
    factor = policy.factor
    if policy.max_side is not None:
        # transformers' pixtral get_resize_output_image_size: shrink (floored) to fit the longest edge, then
        # round each side up to whole merged patches.
        ratio = max(height / policy.max_side, width / policy.max_side)
        if ratio > 1:
            height, width = math.floor(height / ratio), math.floor(width / ratio)
        return (height - 1) // factor * factor + factor, (width - 1) // factor * factor + factor
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > policy.max_pixels:
        beta = math.sqrt((height * width) / policy.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < policy.min_pixels:
        beta = math.sqrt(policy.min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar
