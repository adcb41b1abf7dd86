"""The frames (pages) of a multi-page TIFF, found without decoding a pixel.

A TIFF is a header pointing at a chain of IFDs (image file directories), one per frame; every offset in the
file is absolute. So frame N is a TIFF on its own once the header points at the N-th IFD: `tiff_frame` makes
that copy, and `documents.images.prepare.decode_image` decodes it with all its checks (pixel cap before decoding, EXIF,
RGB on white). The chain is walked here, up to a limit, rather than with PIL's `n_frames`, which follows a
hostile chain of millions of empty IFDs to its end in Python.
"""

from __future__ import annotations

import struct
from typing import Final

_HARD_LIMIT: Final = 100_000  # frames walked at most, whatever the caller's limit


class TiffUnreadable(Exception):
    """The IFD chain leaves the file, loops, or the header is not TIFF."""


def _layout(data: bytes) -> tuple[str, bool]:
    """Byte order ('<' or '>') and whether the file is a BigTIFF (64-bit offsets)."""
    if data[:4] in (b"II*\x00", b"II+\x00"):
        return "<", data[2] == 0x2B
    if data[:4] in (b"MM\x00*", b"MM\x00+"):
        return ">", data[3] == 0x2B
    raise TiffUnreadable("no TIFF header")


def tiff_ifd_offsets(data: bytes, *, limit: int) -> list[int]:
    """The offsets of the first `limit` frames' IFDs (fewer when the file has fewer). Raises TiffUnreadable."""
    order, big = _layout(data)
    if big:
        count_format, entry_size, offset_format, first_at = "Q", 20, "Q", 8
    else:
        count_format, entry_size, offset_format, first_at = "H", 12, "I", 4
    count_size, offset_size = struct.calcsize(count_format), struct.calcsize(offset_format)
    if len(data) < first_at + offset_size:
        raise TiffUnreadable("the header is truncated")
    (offset,) = struct.unpack_from(order + offset_format, data, first_at)
    offsets: list[int] = []
    seen: set[int] = set()
    while offset and len(offsets) < min(limit, _HARD_LIMIT):
        if offset in seen:
            raise TiffUnreadable(f"its frame chain loops back to offset {offset}")
        if offset + count_size > len(data):
            raise TiffUnreadable(f"frame {len(offsets) + 1} lies outside the file (offset {offset:,})")
        (entries,) = struct.unpack_from(order + count_format, data, offset)
        next_at = offset + count_size + entries * entry_size
        if next_at + offset_size > len(data):
            raise TiffUnreadable(f"frame {len(offsets) + 1} is truncated")
        seen.add(offset)
        offsets.append(offset)
        (offset,) = struct.unpack_from(order + offset_format, data, next_at)
    return offsets


def tiff_frame(data: bytes, number: int) -> bytes:
    """Frame `number` (1-based) as a TIFF file whose first frame it is. Raises TiffUnreadable."""
    if number == 1:
        return data
    offsets = tiff_ifd_offsets(data, limit=number)
    if len(offsets) < number:
        raise TiffUnreadable(f"it has no frame {number}")
    order, big = _layout(data)
    first_at, offset_format = (8, "Q") if big else (4, "I")
    end = first_at + struct.calcsize(offset_format)
    return data[:first_at] + struct.pack(order + offset_format, offsets[number - 1]) + data[end:]
