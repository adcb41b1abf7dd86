"""One file's outputs: merging the documents of its page-range requests, rendering them, writing atomically.

The merged JSON has the shape of the gateway's own answer (so a consumer cannot tell a PDF sent in several
requests from one sent at once): pages in page order, Markdown joined as the gateway joins it, usage and
timings summed, and `status` the worst page status.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Suffix of each output format; `--format` names them.
SUFFIX = {"md": ".md", "json": ".json", "csv": ".csv"}
# The gateway's ranking (gateway/documents/response.py); an unknown status ranks as the worst.
_STATUS_RANK = {"ok": 0, "repaired": 1, "degraded": 2, "failed": 3}
_PAGE_BREAK = "\n\n"  # what the gateway puts between pages' Markdown
_CSV_HEADER = ["page", "index", "category", "x1", "y1", "x2", "y2", "text"]  # as the gateway's format=csv


def output_paths(out: Path, stem: Path | os.PathLike[str], formats: list[str]) -> dict[str, Path]:
    """Where each requested output of the input with this stem goes."""
    base = out / stem
    return {fmt: base.with_name(base.name + SUFFIX[fmt]) for fmt in formats}


def is_complete(paths: Mapping[str, Path]) -> bool:
    """Every output exists and is non-empty, and a written JSON does not record a failed document.

    A document with a failed page is written (its other pages are worth keeping) but redone by the next run;
    without a JSON output among those requested that cannot be seen, and `--force` is needed.
    """
    for path in paths.values():
        try:
            if path.stat().st_size == 0:
                return False
        except OSError:
            return False
    json_path = paths.get("json")
    if json_path is None:
        return True
    try:
        with json_path.open("rb") as stream:
            status = json.load(stream).get("status")
    except (OSError, ValueError, AttributeError):
        return False  # unreadable or cut short (written by something else): redo it
    return bool(status != "failed")


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from the documents of a file's page-range requests (one part is returned as it came)."""
    if len(parts) == 1:
        return parts[0]
    pages = sorted((page for part in parts for page in part["pages"]), key=lambda page: int(page.get("page", 0)))
    usage: dict[str, int] = {}
    timings: dict[str, float] = {}
    for part in parts:
        for key, value in (part.get("usage") or {}).items():
            if isinstance(value, int):
                usage[key] = usage.get(key, 0) + value
        for key, value in (part.get("timings") or {}).items():
            if isinstance(value, int | float):
                timings[key] = round(timings.get(key, 0.0) + value, 2)
    merged = dict(parts[0])  # keys the client does not know about are kept from the first part, in its order
    merged.update(
        {
            "id": f"doc-{uuid.uuid4().hex}",
            "status": max((str(p.get("status", "failed")) for p in pages), key=_rank, default="ok"),
            "markdown": _PAGE_BREAK.join(p["markdown"] for p in pages if p.get("markdown")),
            "markdown_no_headers": _PAGE_BREAK.join(
                p["markdown_no_headers"] for p in pages if p.get("markdown_no_headers")
            ),
            "usage": usage,
            "timings": timings,
            "pages": pages,
        }
    )
    return merged


def _rank(status: str) -> int:
    return _STATUS_RANK.get(status, max(_STATUS_RANK.values()))


def render(document: dict[str, Any], fmt: str) -> str:
    """The text of one output format."""
    if fmt == "json":
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if fmt == "md":
        # A trailing newline keeps the file non-empty even for a page without text (layout `--mode detect`),
        # so "exists and non-empty" stays the test of a finished output.
        return str(document.get("markdown") or "").rstrip("\n") + "\n"
    if fmt == "csv":
        return _csv(document)
    raise ValueError(f"unknown output format {fmt!r}")


def _csv(document: dict[str, Any]) -> str:
    """One row per layout element of every page, as the gateway's own `format=csv` answer."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_HEADER)
    for page in document["pages"]:
        for i, element in enumerate(page.get("elements") or []):
            writer.writerow([page["page"], i, element.get("category", ""), *element["bbox"], element.get("text") or ""])
    return out.getvalue()


def write_outputs(document: dict[str, Any], paths: Mapping[str, Path]) -> None:
    """Write every output of one file, each atomically. Blocking: run it in a thread."""
    for fmt, path in paths.items():
        write_atomic(path, render(document, fmt))


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over: a crash leaves no half output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())  # the rename must not land before the data (power loss)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
