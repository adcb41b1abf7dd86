"""Per-model limits on document pages, shared by every request.

Two limits per model: `model` bounds the pages inside vLLM at once (GATEWAY_PAGE_CONCURRENCY, enough to keep
its batch full), and `pipeline` bounds the pages being rendered, prepared or waiting for a model slot, so
the next pages are ready the moment a slot frees without every page of a long PDF sitting in memory.
Measured with `python -m bench.document_throughput`: holding the model slot while rendering stretched each
slot's turn by the render time (wall time 1.33-1.45 x the ideal).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPageSlots:
    """The two semaphores of one model."""

    model: asyncio.Semaphore
    pipeline: asyncio.Semaphore


class PageSlots:
    """The page limits of every model, created lazily in the serving loop."""

    def __init__(self, per_model: int, prefetch: int | None = None) -> None:
        self.per_model = per_model
        # A page or two per core being prepared ahead of the model keeps the CPU busy without hoarding memory.
        self.prefetch = prefetch if prefetch is not None else max(2, 2 * (os.cpu_count() or 1))
        self._slots: dict[str, ModelPageSlots] = {}

    def of(self, model: str) -> ModelPageSlots:
        """The slots of one model's pages."""
        if model not in self._slots:
            self._slots[model] = ModelPageSlots(
                model=asyncio.Semaphore(self.per_model),
                pipeline=asyncio.Semaphore(self.per_model + self.prefetch),
            )
        return self._slots[model]
