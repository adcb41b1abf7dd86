"""What kind of file a request carries: image signatures, and whether a URL is remote (http/https).

Shared by the chat checks, the document reader and the remote-image fetcher, so one list decides what counts
as an image everywhere.
"""

from __future__ import annotations

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
