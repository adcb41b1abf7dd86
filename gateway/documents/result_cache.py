"""The document result cache: the same file read the same way is answered from the store, not the model.

The key is a SHA-256 over the file's bytes and everything that shapes the answer: the model, the task, the exact
prompt texts the request uses, the sampling values it resolves to (first temperature, retry temperatures, top_p,
max tokens), the model's image policy as served, pages, dpi, mode, bbox and picture_crops, plus the gateway's
version (a new release may answer differently), and the cache's scope: with API keys, the name of the key that
asked, so one key never learns (from `cached: true`) that another processed the same file, unless the operator
shares the cache across keys (GATEWAY_CACHE_SHARED_ACROSS_KEYS). Values are the JSON answers, bounded and
evicted least recently used first by the store (`GATEWAY_CACHE_MAX_BYTES`; 0 turns the cache off). Only documents
whose every page came back `ok` or `repaired` are stored: a failed or degraded page may well succeed next time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
import uuid
from typing import Any, Protocol

import orjson

from gateway import __version__
from gateway.documents.page import DocumentTask
from gateway.documents.request import DocumentFile, DocumentOptions
from gateway.upstream.served_models import ServedModel

log = logging.getLogger(__name__)


class CacheStore(Protocol):
    """Where cached answers live: the jobs' store (gateway/jobs/store.py), bounded and least-recently-used."""

    cache_max_bytes: int

    def cache_get(self, key: str) -> bytes | None: ...

    def cache_put(self, key: str, value: bytes) -> None: ...


_KEY_FORMAT = 1  # bump when the cached answer's shape changes
_CACHEABLE_PAGE_STATUS = ("ok", "repaired")


def cache_key(
    model: ServedModel, task: DocumentTask, file: DocumentFile, options: DocumentOptions, *, scope: str | None = None
) -> str:
    """The cache key of one file read with these options (hashes the whole file: call it off the event loop).

    `scope` (the asking key's name) separates the entries of different keys; None: one cache for everyone.
    """
    config = model.config
    sampling = config.sampling
    if task == "layout":
        prompts = [model.prompts["layout_all" if options.mode == "all" else "layout_detect"]]
    elif options.bbox is None:
        prompts = [model.prompts["ocr"]]
    else:
        prompts = [model.prompts.get("grounding", ""), config.grounding_box_format or ""]
    recipe = {
        "format": _KEY_FORMAT,
        "gateway": __version__,
        "model": model.name,
        "task": task,
        "prefix": config.prompt_prefix,
        "prompts": prompts,
        "temperature": sampling.temperature if options.temperature is None else options.temperature,
        "retry_temperatures": sampling.retry_temperatures,
        "top_p": sampling.top_p if options.top_p is None else options.top_p,
        "max_tokens": min(
            options.max_completion_tokens or sampling.max_completion_tokens, sampling.max_completion_tokens_cap
        ),
        "image": model.image.model_dump(mode="json"),
        "pages": options.pages,
        "dpi": options.dpi,
        "mode": options.mode if task == "layout" else None,
        "bbox": options.bbox,
        "picture_crops": options.picture_crops,
    }
    if scope is not None:  # only then: an open gateway's keys stay what they were
        recipe["scope"] = scope
    digest = hashlib.sha256(orjson.dumps(recipe, option=orjson.OPT_SORT_KEYS))
    digest.update(b"\0")
    digest.update(file.data)
    return digest.hexdigest()


async def cached_document(store: CacheStore, key: str, file: DocumentFile, started: float) -> dict[str, Any] | None:
    """The cached answer under `key` with a fresh id, this request's file name and timings; None on a miss."""
    try:
        raw = await asyncio.to_thread(store.cache_get, key)
    except sqlite3.Error:  # the cache is an optimisation: a store problem never fails the request
        log.exception("result cache lookup failed")
        return None
    if raw is None:
        return None
    document: dict[str, Any] = orjson.loads(raw)
    document.pop("filename", None)
    answer = {"id": f"doc-{uuid.uuid4().hex}", **document, "cached": True}
    if file.name:
        answer["filename"] = file.name
    answer["timings"] = {
        "upstream_ms_sum": 0.0,
        "upstream_ms": 0.0,
        "total_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    return answer


async def remember_document(store: CacheStore, key: str, document: dict[str, Any]) -> None:
    """Cache an answer whose every page is ok or repaired."""
    if not document["pages"] or any(page["status"] not in _CACHEABLE_PAGE_STATUS for page in document["pages"]):
        return
    value = orjson.dumps({k: v for k, v in document.items() if k not in ("id", "timings", "filename")})
    try:
        await asyncio.to_thread(store.cache_put, key, value)
    except sqlite3.Error:
        log.exception("result cache write failed")
