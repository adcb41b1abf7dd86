"""Small real images for tests, made with Pillow (no binary fixtures needed for the gateway core)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24)) -> bytes:
    """A tiny image file in `fmt`."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(fmt: str = "PNG", media_type: str = "image/png") -> str:
    """A `data:` URL holding a real image."""
    return f"data:{media_type};base64," + base64.b64encode(image_bytes(fmt)).decode()


def chat_with_image(model: str, url: str, text: str = "What is in this image?") -> dict[str, object]:
    """A chat body with one image part and one text part, as OpenAI clients send it."""
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
            }
        ],
    }
