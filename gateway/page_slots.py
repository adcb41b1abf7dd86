"""Per-model limits on document pages in flight, shared by every request."""

from __future__ import annotations

import asyncio


class PageSlots:
    """Per-model limits on pages in flight, shared by every request (created lazily, in the serving loop)."""

    def __init__(self, per_model: int) -> None:
        self.per_model = per_model
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def of(self, model: str) -> asyncio.Semaphore:
        """The semaphore of one model's pages."""
        if model not in self._semaphores:
            self._semaphores[model] = asyncio.Semaphore(self.per_model)
        return self._semaphores[model]
