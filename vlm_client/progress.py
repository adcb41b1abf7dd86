"""A progress bar over pages, across all files, on stderr.

`[#####-----] 37/120 pages  3/10 files  2.4 pages/s  ETA 34s`. On a terminal the line is redrawn in place
with `\\r`; in a log (not a TTY) a line is printed each time another `every` pages are done, so a CI log
shows progress without thousands of lines. Pages arrive a request (a page range) at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_WIDTH = 20


class Progress:
    """Pages and files done out of the totals, with the rate and an estimate of the time left."""

    def __init__(
        self,
        total_pages: int,
        total_files: int,
        stream: TextIO,
        *,
        every: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_pages = total_pages
        self.total_files = total_files
        self.pages = 0
        self.files = 0
        self._stream = stream
        self._tty = stream.isatty()
        self._every = max(1, every)
        self._next_line = self._every
        self._clock = clock
        self._started = clock()
        self._drawn = False

    def advance(self, pages: int, *, files: int = 0) -> None:
        """`pages` more pages (and `files` more files) finished, whether they succeeded or not."""
        self.pages += pages
        self.files += files
        if self._tty:
            self._draw()
        elif self.pages >= self._next_line or (files and self.files == self.total_files):
            # One line per `every` pages crossed, and one when the last file is done.
            self._next_line = (self.pages // self._every + 1) * self._every
            self._stream.write(self.line() + "\n")
            self._stream.flush()

    def correct_total(self, delta: int) -> None:
        """A file had more or fewer pages than counted beforehand (the gateway counted it)."""
        self.total_pages = max(self.pages, self.total_pages + delta)

    def message(self, text: str) -> None:
        """Print a line (an error) without tearing the bar: clear it, print, draw it again below."""
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[2K")
        self._stream.write(text + "\n")
        if self._tty and self._drawn:
            self._draw()
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line so what follows starts on a fresh one."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

    def line(self) -> str:
        """The bar as one line of text."""
        total = max(self.total_pages, 1)
        filled = min(_WIDTH, _WIDTH * self.pages // total)
        elapsed = self._clock() - self._started
        rate = self.pages / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total_pages - self.pages)
        eta = f"ETA {_duration(left / rate)}" if rate > 0 and left else ("done" if not left else "ETA ?")
        return (
            f"[{'#' * filled}{'-' * (_WIDTH - filled)}] {self.pages}/{self.total_pages} pages  "
            f"{self.files}/{self.total_files} files  {rate:.1f} pages/s  {eta}"
        )

    def _draw(self) -> None:
        self._stream.write("\r" + self.line() + "\x1b[K")  # erase what a longer previous line left behind
        self._stream.flush()
        self._drawn = True


def _duration(seconds: float) -> str:
    """34s, 2m05s, 1h02m: short enough for the bar."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
