"""A whole document (an image, a PDF, a multi-page TIFF) through a task: pages concurrently, results in order.

Pages of one model run at most `GATEWAY_PAGE_CONCURRENCY` at a time across all requests: enough to keep
vLLM's batch full without queueing hundreds of pages inside it. PDF pages are rendered in a process pool
sized to the CPU. In a multi-page document a page that fails yields that page's error, not a failed
document; a born-digital page whose output stays degraded falls back to its embedded text.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.documents.images.prepare import prepare_decoded, prepare_model_sized
from gateway.documents.page import DocumentTask, PageResult, layout_prompt, run_page
from gateway.documents.page_slots import PageSlots
from gateway.documents.pixel_budget import PixelBudget, return_freed_memory
from gateway.documents.request import DocumentFile, DocumentOptions
from gateway.documents.response import RenderedPage, document_json
from gateway.documents.result_cache import CacheStore, cache_key, cached_document, remember_document
from gateway.documents.sources.page_pixels import page_pixels
from gateway.documents.sources.pages import RenderPool, SourceDocument, open_document, parse_pages, render_page
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, RequestTimeout, shown
from gateway.http.disconnect import ClientDisconnected
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.upstream.client import UpstreamClient
from gateway.upstream.served_models import ServedModel


@dataclass(frozen=True)
class DocumentPipeline:
    """Everything reading a document needs, built once by the app factory and shared by requests and jobs."""

    settings: Settings
    models: Mapping[str, ServedModel]
    upstream: UpstreamClient
    metrics: GatewayMetrics
    render_pool: RenderPool  # renders PDF pages, sized to the CPU
    page_slots: PageSlots  # pages of one model in flight at once
    cache_store: CacheStore  # the result cache's store (GATEWAY_CACHE_MAX_BYTES; 0 = off)
    pixel_budget: PixelBudget  # decoded pixels in flight across all requests (GATEWAY_DECODE_PIXEL_BUDGET)
    # Jobs have no request deadline, so the model's work on each of their pages gets one of its own
    # (GATEWAY_REQUEST_TIMEOUT_S): an upstream that drip-feeds bytes never trips the read timeout.
    page_timeout_s: float | None = None


async def run_document(
    pipeline: DocumentPipeline,
    model: ServedModel,
    task: DocumentTask,
    file: DocumentFile,
    options: DocumentOptions,
    *,
    pool: RenderPool,
    slots: PageSlots,
    keep_images: bool = False,
    on_page: Callable[[], None] | None = None,
) -> list[RenderedPage]:
    """Every selected page of `file`, in page order. A single page's failure is raised as the request's.

    `keep_images` keeps each page's decoded image on its result (for the PNG overlay answer); `on_page` is
    called as each page finishes, failed or not (job progress).
    """
    settings = pipeline.settings
    source = await asyncio.to_thread(open_document, file.data, param=file.param, max_pages=settings.max_document_pages)
    numbers = parse_pages(options.pages, source.page_count)
    if len(numbers) > settings.max_pages_per_request:
        raise InvalidRequest(
            f"{len(numbers)} pages selected; one request reads at most {settings.max_pages_per_request} "
            "(select fewer with `pages`, or submit a job)",
            param="pages",
        )
    model_slots = slots.of(model.name)

    async def one(number: int) -> RenderedPage:
        try:
            async with model_slots.pipeline:
                return await _run_one(
                    pipeline, model, task, source, number, file, options, pool, keep_images, model_slots.model
                )
        finally:
            if on_page is not None:
                on_page()

    if len(numbers) == 1:
        return [await one(numbers[0])]
    tasks = [asyncio.create_task(_isolated(one, number)) for number in numbers]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for pending in tasks:  # the client left, or the server stops: no page keeps a GPU slot
            pending.cancel()


async def _within(limit_s: float | None, number: int, work: Awaitable[PageResult]) -> PageResult:
    """The model's work on a page, or RequestTimeout once it has run `limit_s` (None: no limit of its own).

    Only the model's work: a job page waiting for a model slot behind other requests is not at fault, and its
    render has a budget of its own (GATEWAY_RENDER_TIMEOUT_S)."""
    if limit_s is None:
        return await work
    deadline = asyncio.timeout(limit_s)
    try:
        async with deadline:
            return await work
    except TimeoutError:
        if not deadline.expired():
            raise
        raise RequestTimeout(
            f"the model was still working on page {number} after {limit_s:g} s (GATEWAY_REQUEST_TIMEOUT_S, which "
            "a job applies to each of its pages)"
        ) from None


async def _isolated(one: Callable[[int], Awaitable[RenderedPage]], number: int) -> RenderedPage:
    """One page of a multi-page document: its failure becomes its own error entry."""
    try:
        return await one(number)
    except ClientDisconnected:
        raise
    except GatewayError as exc:
        return RenderedPage(number, 0, 0, None, error=exc)


async def _run_one(
    pipeline: DocumentPipeline,
    model: ServedModel,
    task: DocumentTask,
    source: SourceDocument,
    number: int,
    file: DocumentFile,
    options: DocumentOptions,
    pool: RenderPool,
    keep_image: bool,
    model_slot: asyncio.Semaphore,
) -> RenderedPage:
    settings = pipeline.settings
    # Overlays and Picture crops need the page at its own size; otherwise PDF pages are drawn straight at the
    # model's input size, which saves the resize.
    direct = not (keep_image or options.picture_crops)
    budget = pipeline.pixel_budget
    model_max = model.image.max_pixels if direct else None
    pixels = await asyncio.to_thread(page_pixels, source.kind, source.data, number, model_max_pixels=model_max)
    async with budget.hold(pixels):  # decoded, resized and encoded within the shared pixel budget
        page = await render_page(
            source,
            number,
            dpi=options.dpi,
            pool=pool,
            max_pixels=settings.max_upload_pixels,
            param=file.param,
            model_policy=model.image if direct else None,
        )
        if page.original_size is not None:
            prepared = await asyncio.to_thread(prepare_model_sized, page.image, page.original_size)
        else:
            prepared = await asyncio.to_thread(prepare_decoded, page.image, model.image, param=file.param)
    if budget.in_use == 0:  # the last decode in flight: hand its freed heap back (glibc keeps it otherwise)
        await asyncio.to_thread(return_freed_memory)
    async with model_slot:  # held only while the model works on the page
        work = run_page(pipeline.upstream, model, task, prepared, options, pipeline.metrics)
        result = await _within(pipeline.page_timeout_s, number, work)
    if result.status == "degraded" and page.text:
        result = _text_layer_fallback(result, page.text)
        pipeline.metrics.page_fallbacks.labels(model.name, "pdf_text").inc()
    width, height = prepared.geometry.original
    return RenderedPage(number, width, height, result, dpi=page.dpi, image=prepared.image if keep_image else None)


def _text_layer_fallback(result: PageResult, text: str) -> PageResult:
    """A born-digital page the model could not read: its embedded text instead, marked as such."""
    return replace(result, markdown=text, markdown_no_headers=text, elements=[], fallback="pdf_text")


DEFAULT_MODEL = "dots-ocr"


def default_model(pipeline: DocumentPipeline, task: DocumentTask) -> str:
    """dots-ocr when served, else the first served model (by name) that does `task`: a gateway started from a
    profile that serves dots-mocr and paddleocr-vl still answers a request that names no model."""
    if DEFAULT_MODEL in pipeline.models:
        return DEFAULT_MODEL
    able = sorted(name for name, model in pipeline.models.items() if task in model.config.tasks)
    return able[0] if able else DEFAULT_MODEL


def resolve_model(pipeline: DocumentPipeline, options: DocumentOptions, task: DocumentTask) -> ServedModel:
    """The served model a document request names (default_model if none); 404 or 400 if it cannot do `task`."""
    name = options.model or default_model(pipeline, task)
    model = pipeline.models.get(name)
    if model is None:
        raise ModelNotFound(name, pipeline.models)
    if task not in model.config.tasks:
        raise InvalidRequest(
            f"model {shown(name)} does not do {task}; its tasks are {model.config.tasks}", param="model"
        )
    if task == "layout":
        layout_prompt(model, options.mode)  # 400 before any page runs
    return model


def check_options(options: DocumentOptions, task: DocumentTask, *, files: int) -> DocumentOptions:
    """Refuse combinations that cannot be answered; an overlay draws one page (the first unless `pages` says)."""
    if options.format in ("csv", "png") and task != "layout":
        raise InvalidRequest(f"format={options.format} draws layout elements: use /v1/layout", param="format")
    if files > 1 and options.format != "json":
        raise InvalidRequest("a batch of files is answered in JSON only", param="format")
    if options.format == "png" and options.pages is None:
        return options.model_copy(update={"pages": "1"})
    return options


async def json_answer(
    pipeline: DocumentPipeline,
    model: ServedModel,
    task: DocumentTask,
    files: list[DocumentFile],
    options: DocumentOptions,
    *,
    on_page: Callable[[], None] | None = None,
    cache_scope: str | None = None,
) -> dict[str, Any]:
    """The JSON answer for one file (a document) or a batch (a list with one document or error per file).

    `cache_scope`: whose result-cache entries these are (the asking key's name; None: shared by everyone).
    """
    batch = len(files) > 1
    answers = await asyncio.gather(
        *(
            _json_document(pipeline, model, task, file, options, batch=batch, on_page=on_page, scope=cache_scope)
            for file in files
        )
    )
    return {"object": "list", "data": list(answers)} if batch else answers[0]


async def _json_document(
    pipeline: DocumentPipeline,
    model: ServedModel,
    task: DocumentTask,
    file: DocumentFile,
    options: DocumentOptions,
    *,
    batch: bool,
    on_page: Callable[[], None] | None,
    scope: str | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    # -- result cache (documents/result_cache.py): a hit skips the model entirely --
    key: str | None = None
    if pipeline.cache_store.cache_max_bytes > 0:
        key = await asyncio.to_thread(cache_key, model, task, file, options, scope=scope)
        hit = await cached_document(pipeline.cache_store, key, file, started)
        counter = pipeline.metrics.cache_hits if hit is not None else pipeline.metrics.cache_misses
        counter.labels(model.name, task).inc()
        if hit is not None:
            return hit
    # -- end result cache --
    try:
        pages = await run_document(
            pipeline, model, task, file, options, pool=pipeline.render_pool, slots=pipeline.page_slots, on_page=on_page
        )
    except GatewayError as exc:
        if not batch or isinstance(exc, ClientDisconnected):
            raise
        return {"filename": file.name, "status": "failed", "error": exc.body()["error"]}
    # total_ms is this document's wall clock; upstream_ms_sum adds up every page's time at the model, and pages
    # run concurrently, so on a multi-page document it may well exceed total_ms. `upstream_ms` is its old name,
    # kept for clients that read it.
    upstream_ms_sum = sum(page.result.upstream_ms for page in pages if page.result)
    timings = {
        "upstream_ms_sum": upstream_ms_sum,
        "upstream_ms": upstream_ms_sum,
        "total_ms": (time.perf_counter() - started) * 1000,
    }
    answer = document_json(f"doc-{uuid.uuid4().hex}", model.name, task, pages, timings, filename=file.name)
    if key is not None:  # result cache: only answers whose every page succeeded
        await remember_document(pipeline.cache_store, key, answer)
    return answer
