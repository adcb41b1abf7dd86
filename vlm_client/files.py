"""Finding the inputs: files and directories walked recursively, in a sorted, stable order; counting pages.

Each input gets an output stem: a directory's files are mirrored under OUT by their path inside it, a file named
on the command line lands at the top of OUT. Two inputs with the same stem (`a/b.pdf` and `a/b.png`) would
overwrite each other's outputs, so that is refused before anything is sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import pypdfium2 as pdfium  # type: ignore[import-untyped]
from PIL import Image

from vlm_client.errors import UsageError

SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class InputFile:
    """One document to read and where its outputs go."""

    path: Path
    stem: PurePath  # relative to OUT, without suffix: OUT/stem.md, OUT/stem.json, OUT/stem.csv

    @property
    def label(self) -> str:
        """How messages name the file: the path as the user gave or walked it."""
        return str(self.path)


def collect_inputs(arguments: Sequence[str]) -> list[InputFile]:
    """Every input in command-line order, each directory's files sorted by path; raise UsageError if none."""
    found: list[InputFile] = []
    seen: set[Path] = set()
    stems: dict[PurePath, Path] = {}
    for argument in arguments:
        for item in _expand(Path(argument)):
            resolved = item.path.resolve()
            if resolved in seen:  # a file named both alone and inside a directory given too: read it once
                continue
            seen.add(resolved)
            other = stems.get(item.stem)
            if other is not None:
                raise UsageError(f"{other} and {item.path} would write the same outputs ({item.stem}.*); rename one")
            stems[item.stem] = item.path
            found.append(item)
    if not found:
        raise UsageError(
            "no inputs: no " + "/".join(sorted(s[1:] for s in SUFFIXES)) + " file among " + ", ".join(arguments)
        )
    return found


def _expand(path: Path) -> Iterator[InputFile]:
    if path.is_dir():
        for relative in _walk(path):
            yield InputFile(path / relative, relative.with_suffix(""))
    elif path.is_file():
        # A file named explicitly is read whatever its suffix: the gateway sniffs the content, not the name.
        yield InputFile(path, PurePath(path.name).with_suffix(""))
    else:
        raise UsageError(f"{path}: no such file or directory")


def _walk(root: Path) -> list[PurePath]:
    """Supported files under `root`, relative to it, sorted by path components so the order is stable."""
    found: list[PurePath] = []
    for directory, subdirectories, names in os.walk(root):
        # Hidden entries are skipped: `.git`, editors' temp files, macOS `._x.pdf` resource forks.
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        base = PurePath(directory).relative_to(root)
        found.extend(
            base / name for name in names if not name.startswith(".") and PurePath(name).suffix.lower() in SUFFIXES
        )
    return sorted(found, key=lambda p: p.parts)


def count_pages(path: Path) -> int | None:
    """The number of pages (PDF pages, TIFF frames, 1 for other images), or None when it cannot be read here.

    The content is sniffed as the gateway does (a `%PDF-` header within the first KiB, TIFF magic), not the
    suffix. None means "send the whole file in one request and let the gateway judge it", so a broken file
    gets the gateway's own error message.
    """
    try:
        with path.open("rb") as stream:
            head = stream.read(1024)
    except OSError:
        return None
    if b"%PDF-" in head:
        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            return None
        try:
            return len(document)
        finally:
            document.close()
    if head[:4] in _TIFF_MAGIC:
        try:
            with Image.open(path) as image:
                return int(getattr(image, "n_frames", 1))
        except Exception:  # Pillow raises several types (OSError, ValueError, DecompressionBombError)
            return None
    return 1
