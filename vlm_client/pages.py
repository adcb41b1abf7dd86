"""Page selections (`--pages 1-3,7,10-`) and splitting a document's pages into requests of at most K pages.

The gateway refuses a selection that runs past a document's end; the client instead clips `--pages` to each
file's page count, because one selection applies to every file of a run (`--pages 1-3` over PDFs of any length).
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)(?:(-)(\d*))?")

PageRange = tuple[int, int | None]  # first, last (None: to the end)


def parse_spec(spec: str) -> list[PageRange]:
    """'1-3,7,10-' -> [(1, 3), (7, 7), (10, None)]; raise ValueError naming the bad part."""
    ranges: list[PageRange] = []
    for raw in spec.split(","):
        part = raw.strip()
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(f"--pages part {part!r} is not a page or range: use e.g. 3, 1-3 or 4-")
        first = int(match.group(1))
        last = None if match.group(2) and not match.group(3) else int(match.group(3) or first)
        if first < 1:
            raise ValueError(f"--pages part {part!r}: pages count from 1")
        if last is not None and last < first:
            raise ValueError(f"--pages part {part!r} is a reversed range")
        ranges.append((first, last))
    return ranges


def select(ranges: list[PageRange] | None, page_count: int) -> list[int]:
    """The selected 1-based page numbers that exist in a document of `page_count` pages, sorted, unique."""
    if ranges is None:
        return list(range(1, page_count + 1))
    selected: set[int] = set()
    for first, last in ranges:
        selected.update(range(first, min(page_count, last if last is not None else page_count) + 1))
    return sorted(selected)


def chunks(numbers: list[int], size: int) -> list[list[int]]:
    """Consecutive groups of at most `size` page numbers, in order."""
    return [numbers[i : i + size] for i in range(0, len(numbers), size)]


def spec_of(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3,7': the gateway's `pages` field for these pages."""
    parts: list[str] = []
    start = previous = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ",".join(parts)
