"""Durable jobs: a long document (or a batch) read in the background, its result fetched later.

    submit ─► store (queued, with the uploads) ─► asyncio task ─► waits for one of GATEWAY_JOB_CONCURRENCY slots
           ─► running ─► json_answer(..., on_page=progress) ─► succeeded (result JSON) | failed (OpenAI error body)
    cancel ─► the task is cancelled: run_document cancels its pages, the upstream connections close (vLLM aborts
              the sequences) ─► cancelled

Uploads are kept in the store only until the job finishes, so that a job the process was running when it stopped
(crash, kill -9, restart) is resumed from them at the next start-up. A graceful stop leaves running jobs as they
are for the same reason. Finished jobs and their results are deleted GATEWAY_JOB_RESULT_TTL_S after they finish,
by a periodic sweep and at start-up. Pages within a job are bounded per model by the page slots, as for requests;
a job may select up to GATEWAY_MAX_DOCUMENT_PAGES pages (a request: GATEWAY_MAX_PAGES_PER_REQUEST).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import orjson

from gateway.documents.page import DocumentTask
from gateway.documents.pipeline import DocumentPipeline, json_answer, resolve_model
from gateway.documents.request import DocumentFile, DocumentOptions
from gateway.documents.sources.pages import open_document, parse_pages
from gateway.errors import GatewayError, JobConflict, JobNotFound
from gateway.jobs.job_queries import JobPage, list_jobs, visible_to
from gateway.jobs.owner_bounds import check_owner_bounds
from gateway.jobs.store import JobRecord, JobStatus, Store
from gateway.jobs.store_errors import is_disk_full, store_failure
from gateway.mistral_ocr.answer import check_models, mistral_answer
from gateway.mistral_ocr.request import MistralRequest, annotation_formats, read_mistral_options
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Stored beside a job's options (not one of them): whose result-cache entries the job uses.
_CACHE_SCOPE = "cache_scope"
_JOBS_NAMED_IN_LOG = 10  # job ids the "resuming" line names; the rest are only counted
INPUT_LOST = "the gateway restarted and the job's input was lost"
_SWEEP_EVERY_S = 3600.0
_FINISH_RETRY_PAUSES_S = (0.5, 2.0, 5.0)  # a full disk may be cleared by its operator meanwhile


def count_pages(files: list[DocumentFile], options: DocumentOptions, settings: Settings) -> int:
    """Pages the job will read (blocking: PDFium parses each PDF). A single file's problem is raised (a 400 at
    submission); in a batch a file that cannot be read counts 0 pages and fails in the result, as on /v1/ocr."""
    total = 0
    for file in files:
        try:
            source = open_document(file.data, param=file.param, max_pages=settings.max_document_pages)
            total += len(parse_pages(options.pages, source.page_count))
        except GatewayError:
            if len(files) == 1:
                raise
    return total


class JobRunner:
    """Submits, runs, resumes, cancels and expires jobs. `start` and `close` belong to the app's lifespan."""

    def __init__(self, store: Store, pipeline: DocumentPipeline) -> None:
        self.store = store
        self.settings = pipeline.settings
        # A job reads a whole document: its page limit is GATEWAY_MAX_DOCUMENT_PAGES, not a request's.
        settings = pipeline.settings.model_copy(update={"max_pages_per_request": pipeline.settings.max_document_pages})
        # It has no request deadline either: each page gets one instead (GATEWAY_REQUEST_TIMEOUT_S).
        self._pipeline = replace(pipeline, settings=settings, page_timeout_s=settings.request_timeout_s)
        self._slots = asyncio.Semaphore(settings.job_concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, int] = {}  # pages done of the jobs running in this process
        self._writes: set[asyncio.Task[Any]] = set()  # progress writes in flight
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._admission = asyncio.Lock()  # a key's bounds are checked and its job stored as one step
        # Jobs whose end could not be written (the store's disk is full), as they ended; the store still says
        # running, so a restart resumes them.
        self._unrecorded: dict[str, JobRecord] = {}

    async def start(self) -> None:
        """Expire old jobs, resume the ones a previous process left unfinished, start the periodic sweep."""
        await self._sweep()
        unfinished = await asyncio.to_thread(self.store.unfinished_jobs)
        if unfinished:
            log.warning("%s", resuming_message(unfinished))
        for job in unfinished:
            await asyncio.to_thread(self.store.requeue_job, job.id)
            self._schedule(job.id, resumed=True)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="job-sweeper")

    async def close(self) -> None:
        """Stop without finishing anything: queued and running jobs stay so in the store, resumed at next start."""
        self._closing = True
        running = [*self._tasks.values(), *([self._sweeper] if self._sweeper else [])]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def submit(
        self,
        task: DocumentTask,
        files: list[DocumentFile],
        options: DocumentOptions,
        *,
        owner: str | None = None,
        extra: dict[str, Any] | None = None,
        cache_scope: str | None = None,
    ) -> str:
        """Store a job (queued) and schedule it; the job's id. Raises InvalidRequest for what cannot be run,
        RateLimited (429) when `owner` is past its bounds. `extra` is stored beside the options (`mistral`:
        the answer's shape and annotation requests, see mistral_ocr/). `cache_scope` (the submitting key's name,
        or None) is kept with the options: the job, run later or after a restart, reads and writes that key's
        result-cache entries only."""
        pipeline = self._pipeline
        model = resolve_model(pipeline, options, task)
        pages_total = await asyncio.to_thread(count_pages, files, options, pipeline.settings)
        job_id = f"job-{uuid.uuid4().hex}"
        stored = {**options.model_dump(mode="json"), **(extra or {}), _CACHE_SCOPE: cache_scope}
        async with self._admission:
            if owner is not None:
                size = sum(len(file.data) for file in files)
                await asyncio.to_thread(check_owner_bounds, self.store, self.settings, owner, size)
            try:
                await asyncio.to_thread(
                    self.store.create_job, job_id, task, model.name, stored, files, pages_total=pages_total, owner=owner
                )
            except sqlite3.Error as exc:  # a full disk is a 507, never a traceback; nothing was half-stored
                raise store_failure(exc, "storing the job") from None
        self._schedule(job_id, resumed=False)
        return job_id

    async def submit_mistral(self, request: MistralRequest, *, owner: str | None = None) -> str:
        """A Mistral-shaped OCR request as a job: its result is the answer /v1/ocr would give it."""
        model, _ = check_models(self._pipeline, request)  # an unknown model or extractor is a 4xx now, not later
        options = request.document_options(model.name)
        return await self.submit("ocr", [request.file], options, owner=owner, extra=request.stored())

    async def listing(self, owner: str | None, *, limit: int, after: str | None, status: JobStatus | None) -> JobPage:
        """The owner's jobs, newest first; `after` is a job id from an earlier page (JobNotFound if not visible)."""
        cursor = None if after is None else await self.get(after, owner, param="after")
        return await asyncio.to_thread(list_jobs, self.store, owner, limit=limit, after=cursor, status=status)

    async def get(self, job_id: str, owner: str | None = None, *, param: str = "id") -> JobRecord:
        """The job, with live progress if it runs here; JobNotFound if unknown or another key's."""
        try:
            job = await asyncio.to_thread(self.store.get_job, job_id)
        except sqlite3.Error as exc:
            raise store_failure(exc, "reading the job") from None
        if job is None or not visible_to(job, owner):  # another key's job is as absent as a deleted one
            raise JobNotFound(job_id, param=param)
        unrecorded = self._unrecorded.get(job_id)
        if unrecorded is not None and not job.finished:  # its end could not be written: say how it ended
            return unrecorded
        live = self._progress.get(job_id)
        if live is not None and not job.finished and live > job.pages_done:
            job = replace(job, pages_done=live)
        return job

    async def result(self, job_id: str, owner: str | None = None) -> bytes:
        """A succeeded job's JSON answer; JobConflict (409) while it has none, JobNotFound if unknown."""
        job = await self.get(job_id, owner)
        if job.status != "succeeded":
            if job.finished:
                message = f"job {job_id} is {job.status}: it has no result (GET /v1/jobs/{job_id} says why)"
            else:
                message = f"job {job_id} is {job.status}: its result is not ready yet"
            raise JobConflict(message, code="job_not_finished" if not job.finished else "job_has_no_result")
        try:
            body = await asyncio.to_thread(self.store.get_result, job_id)
        except sqlite3.Error as exc:
            raise store_failure(exc, "reading the job's result") from None
        if body is None:  # deleted by a sweep between the two reads
            raise JobNotFound(job_id)
        return body

    async def cancel(self, job_id: str, owner: str | None = None) -> JobRecord:
        """Cancel a queued or running job (its upstream requests are dropped); JobConflict if it has finished."""
        job = await self.get(job_id, owner)
        if job.finished:
            raise JobConflict(f"job {job_id} has already finished: {job.status}", code="job_finished")
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        else:  # not running in this process (another gateway on the same store): mark it
            try:
                await asyncio.to_thread(self.store.finish_job, job_id, "cancelled")
            except sqlite3.Error as exc:
                raise store_failure(exc, "cancelling the job") from None
        job = await self.get(job_id)
        if job.status != "cancelled":  # it finished just before the cancellation landed
            raise JobConflict(f"job {job_id} has already finished: {job.status}", code="job_finished")
        return job

    # -- running ---------------------------------------------------------------------------------------------

    def _schedule(self, job_id: str, *, resumed: bool) -> None:
        task = asyncio.create_task(self._run(job_id, resumed=resumed), name=job_id)
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def _run(self, job_id: str, *, resumed: bool) -> None:
        try:
            async with self._slots:
                await self._run_job(job_id, resumed=resumed)
        except asyncio.CancelledError:
            if not self._closing:  # cancelled by a client: record it; a stopping gateway leaves it to be resumed
                await self._finish(job_id, "cancelled")
                log.info("job %s cancelled", job_id)
                return
            raise
        except GatewayError as exc:
            await self._finish(job_id, "failed", error=exc.body()["error"])
            log.info("job %s failed: %s", job_id, exc.message)
        except sqlite3.Error as exc:  # reading its input or marking it running: the store's reason, no traceback
            await self._finish(job_id, "failed", error=store_failure(exc, "running the job").body()["error"])
            log.warning("job %s failed: its store failed (%s)", job_id, exc)
        except Exception as exc:
            log.error("job %s failed unexpectedly", job_id, exc_info=exc)
            error = {"message": "internal error in the gateway; see its log", "type": "internal_error"}
            await self._finish(job_id, "failed", error={**error, "param": None, "code": None})
        finally:
            self._progress.pop(job_id, None)

    async def _finish(self, job_id: str, status: JobStatus, **outcome: Any) -> None:
        """Record how a job ended, retrying a failed write; if the result cannot be stored (a full disk), the job
        fails with that reason instead (a far smaller write, which also frees its uploads); while nothing can be
        written it is reported from memory as it ended (failed, when its result was lost) and stays running in the
        store, to be resumed at the next start.
        """
        job: JobRecord | None = None
        for attempt, pause_s in enumerate(_FINISH_RETRY_PAUSES_S):
            try:
                if await asyncio.to_thread(self.store.finish_job, job_id, status, **outcome) and status == "succeeded":
                    log.info("job %s succeeded", job_id)
                self._unrecorded.pop(job_id, None)
                return
            except sqlite3.Error as exc:
                log.warning("job %s: could not record it as %s (attempt %d): %s", job_id, status, attempt + 1, exc)
                if outcome.get("result") is not None and is_disk_full(exc):
                    status, outcome = "failed", {"error": store_failure(exc, "storing its result").body()["error"]}
                with contextlib.suppress(sqlite3.Error):
                    job = job or await asyncio.to_thread(self.store.get_job, job_id)
                if job is not None:
                    error = outcome.get("error") or store_failure(exc, "recording its end").body()["error"]
                    shown: JobStatus = "failed" if status == "succeeded" else status
                    self._unrecorded[job_id] = replace(job, status=shown, error=error, finished_at=time.time())
                await asyncio.sleep(pause_s)
        log.error("job %s: its end could not be written to the store; it is reported failed until a restart", job_id)

    async def _run_job(self, job_id: str, *, resumed: bool) -> None:
        store, pipeline = self.store, self._pipeline
        job = await asyncio.to_thread(store.get_job, job_id)
        if job is None or job.finished:  # cancelled or expired meanwhile
            return
        files = await asyncio.to_thread(store.job_files, job_id)
        if not files:
            error = {"message": INPUT_LOST, "type": "internal_error", "param": None, "code": "job_input_lost"}
            await self._finish(job_id, "failed", error=error)
            log.warning("job %s failed: %s", job_id, INPUT_LOST)
            return
        stored = dict(job.options)
        mistral = stored.pop("mistral", None)  # a Mistral-shaped request (submit_mistral)
        scope = stored.pop(_CACHE_SCOPE, None)  # absent from jobs stored before it existed: shared
        options = DocumentOptions.model_validate(stored)
        task: DocumentTask = "layout" if job.task == "layout" else "ocr"
        model = resolve_model(pipeline, options, task)  # a model no longer served fails the job (404 body)
        await asyncio.to_thread(store.start_job, job_id)
        if resumed:
            log.info("job %s resumed from its stored input (%d file(s))", job_id, len(files))
        self._progress[job_id] = 0

        def on_page() -> None:
            done = self._progress.get(job_id, 0) + 1
            self._progress[job_id] = done
            self._write(asyncio.to_thread(store.set_progress, job_id, done))

        if mistral is not None:
            mistral_options = read_mistral_options(mistral)
            document_format, bbox_format = annotation_formats(mistral_options, pipeline.settings)
            request = MistralRequest(files[0], mistral_options, document_format, bbox_format)
            answer = await mistral_answer(pipeline, request, on_page=on_page)
        else:
            answer = await json_answer(pipeline, model, task, files, options, on_page=on_page, cache_scope=scope)
        await self._finish(job_id, "succeeded", result=orjson.dumps(answer), pages_done=job.pages_total)

    def _write(self, write: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and isinstance(task.exception(), sqlite3.Error):
            log.warning("could not record a job's progress: %s", task.exception())

    # -- expiry ------------------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        try:
            deleted = await asyncio.to_thread(self.store.sweep, time.time() - self.settings.job_result_ttl_s)
        except sqlite3.Error as exc:
            log.warning("could not delete expired jobs: %s", exc)
            return
        if deleted:
            log.info("deleted %d job(s) finished more than %g s ago", deleted, self.settings.job_result_ttl_s)

    async def _sweep_forever(self) -> None:
        # Often enough that a result outlives its TTL by at most half of it (and by at most an hour).
        interval = min(_SWEEP_EVERY_S, max(0.05, self.settings.job_result_ttl_s / 2))
        while True:
            await asyncio.sleep(interval)
            await self._sweep()


def resuming_message(unfinished: list[JobRecord]) -> str:
    """The start-up line about unfinished jobs. It names the first few only: after a crash under load there may
    be thousands, and one log line holding every id helps nobody."""
    named = ", ".join(f"{job.id} ({job.status})" for job in unfinished[:_JOBS_NAMED_IN_LOG])
    more = len(unfinished) - _JOBS_NAMED_IN_LOG
    tail = f" and {more} more" if more > 0 else ""
    return f"resuming {len(unfinished)} job(s) left unfinished by a previous run of the gateway: {named}{tail}"
