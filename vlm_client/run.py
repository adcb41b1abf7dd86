"""A run: skip finished files, plan each file's requests, keep N requests in flight, write each file when done.

Requests are taken from one queue in input order (file by file, page range by page range) by N workers that
share one httpx.AsyncClient, so `--concurrency` bounds the requests in flight across all files and the first
files finish first. A file's outputs are written once all its requests are answered; if any request failed,
nothing is written for it and the next run tries it again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from vlm_client.documents import is_complete, merge, output_paths, write_outputs
from vlm_client.errors import RequestFailed
from vlm_client.files import InputFile, count_pages
from vlm_client.pages import PageRange, chunks, select, spec_of
from vlm_client.progress import Progress
from vlm_client.requests import RequestOptions, check_gateway, read_document
from vlm_client.summary import Tally

_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunConfig:
    """Everything the command line decided."""

    inputs: list[InputFile]
    out: Path
    formats: list[str]
    root: str  # the gateway's URL without /v1
    options: RequestOptions
    pages: str | None  # --pages as given
    page_ranges: list[PageRange] | None  # --pages parsed
    pages_per_request: int
    concurrency: int
    timeout_s: float
    force: bool


@dataclass
class _FileWork:
    """One file being read: its requests (the `pages` field of each) and their answers so far."""

    file: InputFile
    paths: dict[str, Path]
    requests: list[str | None] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # pages each request is expected to answer
    parts: list[dict[str, Any] | None] = field(default_factory=list)
    pending: int = 0
    error: str | None = None


async def run(config: RunConfig, stderr: TextIO) -> Tally:
    """Read every unfinished input; raise UsageError (before any document is sent) if the gateway is unusable."""
    started = time.monotonic()
    tally = Tally()
    todo: list[_FileWork] = []
    for file in config.inputs:
        paths = output_paths(config.out, file.stem, config.formats)
        if not config.force and is_complete(paths):
            tally.files_skipped += 1
        else:
            todo.append(_FileWork(file, paths))
    if todo:
        timeout = httpx.Timeout(
            connect=_CONNECT_TIMEOUT_S, read=config.timeout_s, write=config.timeout_s, pool=config.timeout_s
        )
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            # Fail fast, before counting pages of thousands of files, if the gateway is not there.
            await check_gateway(client, config.root, config.options)
            await asyncio.to_thread(_plan_all, todo, config)
            await _Runner(client, config, todo, tally, stderr).run()
    tally.wall_s = time.monotonic() - started
    return tally


def _plan_all(todo: list[_FileWork], config: RunConfig) -> None:
    """Split each file into requests of at most `pages_per_request` pages. Blocking (opens PDFs)."""
    for work in todo:
        count = count_pages(work.file.path)
        if count is None:
            # Unreadable here: one request for the whole file, and the gateway's error (or answer) decides.
            work.requests, work.sizes = [config.pages], [1]
        else:
            selected = select(config.page_ranges, count)
            if not selected:
                work.error = f"--pages {config.pages} selects none of its {count} page(s)"
            elif len(selected) == count and count <= config.pages_per_request:
                work.requests, work.sizes = [None], [count]  # the whole file at once: no `pages` needed
            else:
                groups = chunks(selected, config.pages_per_request)
                work.requests, work.sizes = [spec_of(group) for group in groups], [len(group) for group in groups]
        work.parts = [None] * len(work.requests)
        work.pending = len(work.requests)


class _Runner:
    """The workers, the progress bar and the tally of one run."""

    def __init__(
        self, client: httpx.AsyncClient, config: RunConfig, todo: list[_FileWork], tally: Tally, stderr: TextIO
    ) -> None:
        self._client = client
        self._config = config
        self._todo = todo
        self._tally = tally
        total = sum(sum(work.sizes) for work in todo)
        # In a log, about 20 progress lines per run, but at least one every 100 pages.
        self._progress = Progress(total, len(todo), stderr, every=min(100, max(1, total // 20)))
        self._queue: deque[tuple[_FileWork, int]] = deque(
            (work, index) for work in todo for index in range(len(work.requests))
        )

    async def run(self) -> None:
        try:
            for work in self._todo:
                if work.pending == 0:  # nothing to send (no page selected): it failed while planning
                    self._progress.message(f"{work.file.label}: {work.error}")
                    await self._finish(work)
            workers = min(self._config.concurrency, len(self._queue))
            await asyncio.gather(*(self._worker() for _ in range(workers)))
        finally:
            self._progress.close()

    async def _worker(self) -> None:
        while self._queue:
            work, index = self._queue.popleft()
            await self._send(work, index)
            work.pending -= 1
            if work.pending == 0:
                await self._finish(work)

    async def _send(self, work: _FileWork, index: int) -> None:
        expected = work.sizes[index]
        if work.error is not None:  # an earlier range of this file failed: the file will not be written
            self._progress.advance(expected)
            return
        try:
            part = await read_document(
                self._client, self._config.root, work.file.path, self._config.options, work.requests[index]
            )
        except RequestFailed as exc:
            if work.error is None:
                work.error = str(exc)
                self._progress.message(f"{work.file.label}: {exc}")
            self._progress.advance(expected)
            return
        work.parts[index] = part
        answered = len(part["pages"])
        self._progress.correct_total(answered - expected)
        self._progress.advance(answered)

    async def _finish(self, work: _FileWork) -> None:
        tally = self._tally
        if work.error is None:
            try:
                document = merge([part for part in work.parts if part is not None])
                await asyncio.to_thread(write_outputs, document, work.paths)
            except OSError as exc:
                work.error = f"cannot write its outputs: {exc}"
            except (KeyError, TypeError, ValueError) as exc:  # a document the client cannot shape
                work.error = f"unexpected answer from the gateway: {type(exc).__name__}: {exc}"
            else:
                tally.files_done += 1
                tally.add_document(document)
                for page in document["pages"]:
                    if page.get("status") == "failed":
                        message = (page.get("error") or {}).get("message", "no message")
                        self._progress.message(f"{work.file.label}: page {page.get('page')} failed: {message}")
                self._progress.advance(0, files=1)
                return
            self._progress.message(f"{work.file.label}: {work.error}")
        tally.files_failed += 1
        self._progress.advance(0, files=1)
