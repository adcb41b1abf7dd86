"""What kind of file a request carries: image signatures, and whether a URL is remote (http/https).

Shared by the chat checks, the document reader and the remote-image fetcher, so one list decides what counts
as an image everywhere.
"""

from __future__ import annotations

import base64
import binascii

# (offset, signature, media type): the media type of a fetched remote image comes from here, not from
# whatever Content-Type its server claimed.
_IMAGE_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),  # after "RIFF" and a length
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),  # little-endian
    (0, b"MM\x00*", "image/tiff"),  # big-endian
)
IMAGE_KINDS = "PNG, JPEG, GIF, WebP, BMP or TIFF"
# Said wherever remote image URLs are refused because the operator allowed none: the setting that changes it.
REMOTE_IMAGES_OFF = (
    "remote image URLs are not fetched: no domain is allowed (the operator's GATEWAY_REMOTE_IMAGE_DOMAINS is empty)"
)
# Said wherever a PDF arrives where only images go: chat models see images, the document routes render PDFs.
PDF_GOES_TO_DOCUMENTS = "a PDF: send it to /v1/ocr or /v1/layout (multipart `file`), which render its pages"
_REMOTE_SCHEMES = ("http://", "https://")


def is_remote_url(url: str) -> bool:
    """An http(s) URL: fetched by the gateway when allow-listed (gateway/security/remote_images.py), else refused."""
    return url.startswith(_REMOTE_SCHEMES)


def image_media_type(head: bytes) -> str | None:
    """The media type of an image file from its first bytes (12 are enough), or None when it is no image."""
    for offset, magic, media_type in _IMAGE_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return media_type
    return None


_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of every whole PNG
_JPEG_END = b"\xff\xd9"  # EOI; cameras may append data after it (motion photos), so it is searched for
_TAIL_CHARS = 1368  # base64 characters of the last 1 KiB, a multiple of 4 so it decodes on its own


def base64_image_is_whole(payload: str, media_type: str, head: bytes) -> bool:
    """Whether a base64 image visibly ends where its format says it must (False: the file was cut short).

    Reads the format's end marker, or the size its header declares, from the payload's last 1 KiB, so a
    whole image costs microseconds however large it is. Only a JPEG without EOI in that tail is decoded
    whole (an EOI followed by appended data is legitimate). TIFF keeps its directories anywhere and is
    left to the decoder.
    """
    payload = payload.rstrip()
    try:
        cut = len(payload) - min(len(payload), _TAIL_CHARS) // 4 * 4
        tail = base64.b64decode(payload[cut:], validate=True)
    except (binascii.Error, ValueError):
        return False
    size = len(payload) // 4 * 3 - payload[-2:].count("=")
    if media_type == "image/png":
        return tail.endswith(_PNG_END)
    if media_type == "image/gif":
        return tail.endswith(b";")  # the trailer byte
    if media_type == "image/webp":
        return size >= int.from_bytes(head[4:8], "little") + 8  # RIFF size counts from byte 8
    if media_type == "image/bmp":
        declared = int.from_bytes(head[2:6], "little")  # 0 is allowed by some writers: unknown
        return declared == 0 or size >= declared
    if media_type == "image/jpeg":
        if _JPEG_END in tail:
            return True
        try:
            return _JPEG_END in base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return False
    return True
