"""The cheap look at a chat request the hot path needs: which model, streamed or not, images sane.

The body is forwarded to vLLM byte for byte, so this reads only what routing and safety need and leaves
the rest of the validation to vLLM, whose 400s pass through. Image data URLs are checked by decoding only
their first bytes (the file signature), never the whole base64 payload.

Content parts are `text` or `image_url` and nothing else (`_check_part` says why); a message whose content is a
plain string costs no more than before.

Remote (http/https) image URLs are refused here unless the gateway has a remote-image allow-list; then they
are reported back in `ChatRequestInfo.remote_images` for the route to fetch (gateway/security/remote_images.py) and
inline with `inline_image_urls`. A request without remote URLs costs nothing more either way.

vLLM's removed `guided_*` fields are rewritten to `structured_outputs` (chat/structured_outputs.py); the
rewritten body is reported in `rebuilt_body`. Only a request holding one of those keys pays for it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from gateway.chat.structured_outputs import GUIDED_KEYS, rewrite_guided_fields
from gateway.errors import InvalidRequest, shown
from gateway.http.media_types import (
    IMAGE_KINDS,
    PDF_GOES_TO_DOCUMENTS,
    REMOTE_IMAGES_OFF,
    base64_image_is_whole,
    image_media_type,
    is_remote_url,
)
from gateway.http.request_body import json_object, json_type

# `max_tokens` is the older name of `max_completion_tokens`; vLLM accepts both.
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
# Enough base64 for every signature below (multiple of 4 so it decodes on its own).
_SIGNATURE_CHARS = 24


@dataclass(frozen=True, slots=True)
class RemoteImageRef:
    """An http(s) image URL in a chat request, and where it sits: `messages[message].content[part]`."""

    message: int
    part: int
    url: str

    @property
    def param(self) -> str:
        return f"messages[{self.message}].content[{self.part}].image_url.url"


@dataclass(frozen=True, slots=True)
class ChatRequestInfo:
    """What the gateway needs to know about a chat request to route it."""

    model: str
    stream: bool
    # Remote image URLs the caller must fetch (ChatRequestWithRemoteImages). A class attribute here, not a
    # field: a third frozen field cost every request ~0.15 µs, a tenth of this whole function.
    remote_images: ClassVar[tuple[RemoteImageRef, ...]] = ()
    # The body to forward instead of the client's, when it had to be rebuilt (`guided_*` fields rewritten).
    rebuilt_body: ClassVar[bytes | None] = None


@dataclass(frozen=True, slots=True)
class ChatRequestWithRemoteImages(ChatRequestInfo):
    """A chat request that needs more than forwarding: http(s) image URLs to fetch (only with
    `inspect_chat_request(..., remote_images=True)`), and/or a body rebuilt from `guided_*` fields."""

    remote_images: tuple[RemoteImageRef, ...]  # type: ignore[misc]  # the field that shadows the empty default
    rebuilt_body: bytes | None = None  # type: ignore[misc]


def inspect_chat_request(
    body: bytes, max_completion_tokens: int | None = None, *, remote_images: bool = False
) -> ChatRequestInfo:
    """Parse and check just enough of a chat completion body; raise InvalidRequest naming the field.

    `max_completion_tokens` caps `max_tokens` and `max_completion_tokens` (None: no cap). A request over the
    cap is refused, not rewritten: the body is forwarded byte for byte. With `remote_images`, http(s) image
    URLs are listed in the answer instead of refused (the caller fetches them; nothing here is fetched).
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
    remote = _check_messages(data.get("messages"), remote_images)
    for field in _TOKEN_FIELDS:
        _check_token_limit(field, data.get(field), max_completion_tokens)
    rebuilt = None if GUIDED_KEYS.isdisjoint(data) else rewrite_guided_fields(data)
    if remote is None and rebuilt is None:
        return ChatRequestInfo(model=model, stream=bool(stream))
    return ChatRequestWithRemoteImages(
        model=model, stream=bool(stream), remote_images=tuple(remote or ()), rebuilt_body=rebuilt
    )


def inline_image_urls(body: bytes, urls: dict[RemoteImageRef, str]) -> bytes:
    """The body with each remote image's URL replaced by its given (data:) URL; the only time it is rebuilt."""
    data = orjson.loads(body)
    for ref, url in urls.items():
        data["messages"][ref.message]["content"][ref.part]["image_url"]["url"] = url
    return orjson.dumps(data)


def _check_token_limit(field: str, value: Any, cap: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else json_type(value)
        raise InvalidRequest(f"`{field}` must be a non-negative integer, not {shown}", param=field)
    if cap is not None and value > cap:
        raise InvalidRequest(f"`{field}` is {value}, over this gateway's limit of {cap}", param=field)


def _check_messages(messages: Any, allow_remote: bool) -> list[RemoteImageRef] | None:
    """Check every message; return the remote image URLs found (None when there are none)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array of messages", param="messages")
    remote: list[RemoteImageRef] | None = None  # allocated only for a request that has remote URLs
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"`messages[{i}]` must be an object", param=f"messages[{i}]")
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                url = _check_part(part, f"messages[{i}].content[{j}]", allow_remote)
                if url is not None:
                    remote = remote or []
                    remote.append(RemoteImageRef(i, j, url))
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(
                f"`messages[{i}].content` must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )
    return remote


def _check_part(part: Any, where: str, allow_remote: bool) -> str | None:
    """Check one content part; return its image URL when it is a remote one the caller will fetch.

    Only `text` and `image_url` parts pass, and neither may carry a key vLLM reads as media: vLLM also parses
    untyped parts by their keys (`{"image_url": ...}`), `input_image`, `video_url`, `audio_url`, `input_audio`,
    `image_embeds`..., and fetches their URLs itself. A part this gateway has not vetted never reaches it.
    """
    if not isinstance(part, dict):
        raise InvalidRequest(f"`{where}` must be an object", param=where)
    kind = part.get("type")
    if kind == "text":
        if len(part) > 2:  # the usual {"type", "text"} costs one len()
            _refuse_media_keys(part, "text", where)
        return None
    if kind != "image_url":
        raise _unaccepted_part(kind, where)
    if len(part) > 2:
        _refuse_media_keys(part, "image_url", where)
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str):
        raise InvalidRequest(f"`{where}.image_url.url` must be a string", param=f"{where}.image_url.url")
    if allow_remote and is_remote_url(url):
        return url
    check_image_url(url, f"{where}.image_url.url")
    return None


# Keys vLLM reads a media item from (its chat parser's part types, typed or not, across recent releases); one
# in a text part, or a second one in an image part, would be parsed by some version as media nobody vetted.
_MEDIA_KEYS = frozenset(
    {
        "image_url",
        "image_embeds",
        "image_pil",
        "image",
        "input_image",
        "audio_url",
        "input_audio",
        "audio",
        "audio_embeds",
        "video_url",
        "video",
        "file",
        "file_url",
        "input_file",
    }
)
# Media the models behind this gateway (image-to-text VLMs, started with no video) cannot read anyway.
_NOT_IMAGES = {"video_url": "video", "audio_url": "audio", "input_audio": "audio"}


def _refuse_media_keys(part: dict[str, Any], kind: str, where: str) -> None:
    extra = sorted(key for key in part.keys() & _MEDIA_KEYS if key != kind)
    if extra:
        raise InvalidRequest(
            f"`{where}` is a {kind} part that also carries `{extra[0]}`; send each image as its own image_url part",
            param=where,
        )


def _unaccepted_part(kind: Any, where: str) -> InvalidRequest:
    if kind is None:
        message = f"`{where}` has no `type`: every content part must say whether it is `text` or `image_url`"
    elif kind in _NOT_IMAGES:
        message = (
            f"`{where}` is a {kind} part: the models behind this gateway read text and images only, "
            f"so {_NOT_IMAGES[kind]} is not accepted"
        )
    else:
        shown_kind = shown(kind, 40) if isinstance(kind, str) else json_type(kind)
        message = f"`{where}` has type {shown_kind!r}, which this gateway does not accept: use `text` or `image_url`"
    return InvalidRequest(message, param=where)


def check_image_url(url: str, param: str) -> None:
    """Accept only an inline `data:image/...;base64,` URL whose bytes start like an image file."""
    if is_remote_url(url):
        raise InvalidRequest(
            f"`{param}`: {REMOTE_IMAGES_OFF}; send the image inline as a data: URL",
            param=param,
        )
    if not url.startswith("data:"):
        raise InvalidRequest(f"`{param}` must be a data: URL (data:image/png;base64,...)", param=param)
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest(f"`{param}` must be a base64 data: URL (data:image/png;base64,...)", param=param)
    media_type = header.removesuffix(";base64").split(";")[0].strip().lower()
    if media_type == "application/pdf":
        raise InvalidRequest(f"`{param}` is {PDF_GOES_TO_DOCUMENTS}", param=param)
    if not media_type.startswith("image/"):
        raise InvalidRequest(f"`{param}` is a data: URL of {media_type or 'no type'}, not an image", param=param)
    try:
        head = base64.b64decode(payload[:_SIGNATURE_CHARS], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"`{param}` does not hold valid base64 data", param=param) from None
    if head.startswith(b"%PDF-"):
        raise InvalidRequest(f"`{param}` holds {PDF_GOES_TO_DOCUMENTS}", param=param)
    kind = image_media_type(head)
    if kind is None:
        raise InvalidRequest(f"`{param}` does not hold an image (expected {IMAGE_KINDS} data)", param=param)
    # vLLM would refuse a cut-short file too, but with `param: null`: say which image it is.
    if not base64_image_is_whole(payload, kind, head):
        raise InvalidRequest(f"`{param}` is a truncated {kind.removeprefix('image/').upper()} file", param=param)
