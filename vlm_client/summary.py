"""What a run did, counted as it goes, printed as a table at the end, and the exit status it implies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # a file or a page failed
EXIT_USAGE = 2


@dataclass
class Tally:
    """Counts of one run. Pages are those the gateway answered in this run (skipped files count none)."""

    files_done: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    pages: int = 0
    pages_degraded: int = 0
    pages_fallback: int = 0
    pages_failed: int = 0
    wall_s: float = 0.0

    def add_document(self, document: dict[str, Any]) -> None:
        """Count the pages of a document the gateway answered."""
        for page in document["pages"]:
            self.pages += 1
            status = page.get("status")
            self.pages_degraded += status == "degraded"
            self.pages_failed += status == "failed"
            self.pages_fallback += bool(page.get("fallback"))

    @property
    def exit_code(self) -> int:
        """0 if every file and page succeeded (degraded pages included: they hold the best text there is)."""
        return EXIT_FAILED if self.files_failed or self.pages_failed else EXIT_OK

    def table(self) -> str:
        """The summary, one `name  value` row per count."""
        rate = self.pages / self.wall_s if self.wall_s > 0 else 0.0
        rows = [
            ("files done", str(self.files_done)),
            ("files skipped", str(self.files_skipped)),
            ("files failed", str(self.files_failed)),
            ("pages", str(self.pages)),
            ("pages degraded", str(self.pages_degraded)),
            ("pages fallback", str(self.pages_fallback)),
            ("pages failed", str(self.pages_failed)),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("pages/s", f"{rate:.2f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value:>8}" for name, value in rows)
