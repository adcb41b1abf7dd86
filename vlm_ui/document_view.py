"""What the Document tab shows of a document answer: element rows, per-page status, timings, CSV.

Pure functions of the gateway's JSON, kept apart from Gradio so they are tested without a browser.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

ELEMENT_COLUMNS = ["page", "#", "category", "x1", "y1", "x2", "y2", "text"]
STATUS_COLUMNS = ["page", "status", "attempts", "finish", "what was repaired or dropped"]


def element_rows(document: Mapping[str, Any], page_number: int | None = None) -> list[list[Any]]:
    """One row per layout element, in reading order; only page `page_number` when given."""
    rows: list[list[Any]] = []
    for page in document.get("pages") or []:
        if page_number is not None and page.get("page") != page_number:
            continue
        for element in page.get("elements") or []:
            bbox = list(element.get("bbox") or [None] * 4)
            text = element.get("text")
            rows.append([page.get("page"), element.get("index"), element.get("category"), *bbox, text or ""])
    return rows


def status_rows(document: Mapping[str, Any]) -> list[list[Any]]:
    """Per page: ok / repaired / degraded / failed, and what the gateway had to repair, drop or fall back on."""
    rows = []
    for page in document.get("pages") or []:
        rows.append(
            [
                page.get("page"),
                page.get("status", "?"),
                page.get("attempts", ""),
                page.get("finish_reason") or "",
                _what_happened(page),
            ]
        )
    return rows


def _what_happened(page: Mapping[str, Any]) -> str:
    notes = []
    if isinstance(page.get("error"), Mapping):
        error = page["error"]
        notes.append(f"error: {error.get('message', '')}")
    repairs = page.get("repairs") or {}
    if repairs:
        notes.append("repaired: " + ", ".join(f"{kind} x{count}" for kind, count in repairs.items()))
    dropped = page.get("dropped_elements") or {}
    if dropped:
        notes.append("dropped: " + ", ".join(f"{reason} x{count}" for reason, count in dropped.items()))
    if page.get("fallback"):
        notes.append(f"fallback: {page['fallback']}")
    if page.get("status") == "degraded":
        notes.append("output stayed invalid after retries: Markdown is the best cleaned text, no boxes")
    return "; ".join(notes)


def summary_markdown(document: Mapping[str, Any]) -> str:
    """A line for the status box: overall status, pages, timings and tokens."""
    pages = document.get("pages") or []
    counts: dict[str, int] = {}
    for page in pages:
        status = str(page.get("status", "?"))
        counts[status] = counts.get(status, 0) + 1
    by_status = ", ".join(f"{count} {status}" for status, count in counts.items())
    parts = [f"**{document.get('status', '?')}** — {len(pages)} page(s): {by_status}"]
    parts.append(f"model `{document.get('model', '?')}`")
    if document.get("cached"):
        parts.append("answered from the gateway's result cache")
    timings = document.get("timings") or {}
    if timings:
        parts.append(" · ".join(f"{_timing_name(name)} {value:,.0f} ms" for name, value in timings.items()))
    usage = document.get("usage") or {}
    if usage:
        parts.append(f"tokens: {usage.get('prompt_tokens', 0):,} in, {usage.get('completion_tokens', 0):,} out")
    return "  \n".join(parts)


def _timing_name(key: str) -> str:
    return key.removesuffix("_ms").replace("_", " ")


def document_csv(document: Mapping[str, Any]) -> str:
    """The same columns as the gateway's `format=csv`: page, index, category, x1, y1, x2, y2, text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["page", "index", "category", "x1", "y1", "x2", "y2", "text"])
    for row in element_rows(document):
        writer.writerow(row)
    return out.getvalue()


def find_page(document: Mapping[str, Any], page_number: int) -> Mapping[str, Any]:
    for page in document.get("pages") or []:
        if page.get("page") == page_number:
            result: Mapping[str, Any] = page
            return result
    return {}


def page_numbers(document: Mapping[str, Any]) -> list[int]:
    return [int(page["page"]) for page in document.get("pages") or [] if isinstance(page.get("page"), int)]


def parse_bbox(text: str) -> list[float] | None:
    """ "x1,y1,x2,y2" (spaces allowed) to four numbers, or None when it is not that."""
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    if len(parts) != 4:
        return None
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def categories(rows: Sequence[Sequence[Any]]) -> list[str]:
    return [str(row[2]) for row in rows]
