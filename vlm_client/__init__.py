"""A command-line client for the gateway: OCR or layout of many files, resumable, with progress and a summary.

`vlm-client ocr|layout FILES_OR_DIRS... --gateway URL --out DIR` sends every page image, PDF and TIFF it finds
to `/v1/ocr` or `/v1/layout` and writes, per input, the document's Markdown, JSON and (layout) CSV under OUT.
Only the standard library, httpx, Pillow and pypdfium2 are used: the client never imports the gateway itself.
"""

from __future__ import annotations

from vlm_client.cli import main

__all__ = ["main"]
