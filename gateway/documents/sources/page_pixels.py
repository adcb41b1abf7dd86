"""How many decoded pixels a page will hold in the gateway's process, read from headers only (for the pixel
budget, gateway/documents/pixel_budget.py). Cheap: no pixel is decoded here."""

from __future__ import annotations

from gateway.documents.images.decode import ImageRejected, _open_header, _sniff
from gateway.documents.sources.pdf_render import MAX_SIDE_PX
from gateway.documents.sources.tiff_frames import TiffUnreadable, tiff_frame


def page_pixels(kind: str, data: bytes, number: int, *, model_max_pixels: int | None) -> int:
    """Width x height of page `number` as declared, or the most a PDF page can come back as (the model's pixel
    cap when drawn at the model size, else the 4500 px side limit). 1 when the header cannot be read: the page's
    own decode then refuses it."""
    if kind == "pdf":
        return model_max_pixels if model_max_pixels is not None else MAX_SIDE_PX * MAX_SIDE_PX
    try:
        frame = tiff_frame(data, number) if kind == "tiff" else data
        image = _open_header(frame, _sniff(frame, "file"), "file")
    except (ImageRejected, TiffUnreadable):
        return 1
    width, height = image.size
    return max(1, width * height)
