"""The cheap look at a chat request the hot path needs: which model, streamed or not, images sane.

The body is forwarded to vLLM byte for byte, so this reads only what routing and safety need and leaves
the rest of the validation to vLLM, whose 400s pass through. Image data URLs are checked by decoding only
their first bytes (the file signature), never the whole base64 payload.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest
from gateway.request_body import json_object, json_type

# `max_tokens` is the older name of `max_completion_tokens`; vLLM accepts both.
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
# Enough base64 for every signature below (multiple of 4 so it decodes on its own).
_SIGNATURE_CHARS = 24
_IMAGE_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (8, b"WEBP"),  # after "RIFF" and a length
    (0, b"BM"),  # BMP
    (0, b"II*\x00"),  # TIFF, little-endian
    (0, b"MM\x00*"),  # TIFF, big-endian
)


@dataclass(frozen=True, slots=True)
class ChatRequestInfo:
    """What the gateway needs to know about a chat request to route it."""

    model: str
    stream: bool


def inspect_chat_request(body: bytes, max_completion_tokens: int | None = None) -> ChatRequestInfo:
    """Parse and check just enough of a chat completion body; raise InvalidRequest naming the field.

    `max_completion_tokens` caps `max_tokens` and `max_completion_tokens` (None: no cap). A request over the
    cap is refused, not rewritten: the body is forwarded byte for byte.
    """
    data = json_object(body)
    model = data.get("model")
    if model is None:
        raise InvalidRequest("`model` is required: name one of GET /v1/models", param="model")
    if not isinstance(model, str):
        raise InvalidRequest(f"`model` must be a string, not {json_type(model)}", param="model")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest(f"`stream` must be a boolean, not {json_type(stream)}", param="stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest(f"`stream_options` must be an object, not {json_type(options)}", param="stream_options")
    _check_messages(data.get("messages"))
    for field in _TOKEN_FIELDS:
        _check_token_limit(field, data.get(field), max_completion_tokens)
    return ChatRequestInfo(model=model, stream=bool(stream))


def _check_token_limit(field: str, value: Any, cap: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else json_type(value)
        raise InvalidRequest(f"`{field}` must be a non-negative integer, not {shown}", param=field)
    if cap is not None and value > cap:
        raise InvalidRequest(f"`{field}` is {value}, over this gateway's limit of {cap}", param=field)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array of messages", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"`messages[{i}]` must be an object", param=f"messages[{i}]")
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, f"messages[{i}].content[{j}]")
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(
                f"`messages[{i}].content` must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise InvalidRequest(f"`{where}` must be an object", param=where)
    if part.get("type") != "image_url":
        return
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str):
        raise InvalidRequest(f"`{where}.image_url.url` must be a string", param=f"{where}.image_url.url")
    check_image_url(url, f"{where}.image_url.url")


def check_image_url(url: str, param: str) -> None:
    """Accept only an inline `data:image/...;base64,` URL whose bytes start like an image file."""
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"`{param}`: remote image URLs are not fetched; send the image inline as a data: URL",
            param=param,
        )
    if not url.startswith("data:"):
        raise InvalidRequest(f"`{param}` must be a data: URL (data:image/png;base64,...)", param=param)
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest(f"`{param}` must be a base64 data: URL (data:image/png;base64,...)", param=param)
    media_type = header.removesuffix(";base64").split(";")[0].strip().lower()
    if not media_type.startswith("image/"):
        raise InvalidRequest(f"`{param}` is a data: URL of {media_type or 'no type'}, not an image", param=param)
    try:
        head = base64.b64decode(payload[:_SIGNATURE_CHARS], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"`{param}` does not hold valid base64 data", param=param) from None
    if not any(head[offset : offset + len(magic)] == magic for offset, magic in _IMAGE_SIGNATURES):
        raise InvalidRequest(
            f"`{param}` does not hold an image (expected PNG, JPEG, GIF, WebP, BMP or TIFF data)", param=param
        )
