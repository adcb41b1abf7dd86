"""POST /v1/ocr and POST /v1/layout: a page image in, its text and layout out, validated and repaired."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.documents.output.overlay import draw_layout
from gateway.documents.page import DocumentTask
from gateway.documents.pipeline import check_options, json_answer, resolve_model, run_document
from gateway.documents.request import DocumentFile, DocumentOptions, json_payload, read_document_request
from gateway.documents.response import document_csv
from gateway.http.disconnect import run_unless_disconnected
from gateway.mistral_ocr.answer import mistral_answer
from gateway.mistral_ocr.request import read_mistral_request
from gateway.routes.dependencies import GatewayState, StateDep
from gateway.routes.error_responses import ERROR_RESPONSES
from gateway.upstream.served_models import ServedModel

router = APIRouter(tags=["Documents"])


_FIELDS = {
    "model": {"type": "string", "description": "a model with the task (GET /v1/models); default dots-ocr"},
    "format": {"type": "string", "enum": ["json", "markdown", "csv", "png"], "default": "json"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "picture_crops": {"type": "boolean", "default": False},
}


def _openapi(extra_fields: dict[str, Any]) -> dict[str, Any]:
    fields = {**_FIELDS, **extra_fields}
    multipart = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, **fields},
    }
    image = {
        "type": "string",
        "description": "a data: URL or bare base64 of the image file, or an http(s) image URL on the gateway's "
        "allow-list (GATEWAY_REMOTE_IMAGE_DOMAINS)",
    }
    json_body = {"type": "object", "required": ["image"], "properties": {"image": image, **fields}}
    content = {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": json_body}}
    return {"requestBody": {"required": True, "content": content}}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the document (JSON), or its Markdown, CSV (one row per element) or PNG overlay",
        "content": {"application/json": {}, "text/markdown": {}, "text/csv": {}, "image/png": {}},
    },
    **ERROR_RESPONSES,
}
_MODE = {"mode": {"type": "string", "enum": ["all", "detect", "web", "scene"], "default": "all"}}
_BBOX = {"bbox": {"type": "string", "description": "a region x1,y1,x2,y2 in original-image pixels: grounding OCR"}}
_PAGES = {
    "pages": {"type": "string", "description": "PDF/TIFF pages, e.g. 1-3,7 (default all)"},
    "dpi": {"type": "integer", "minimum": 36, "maximum": 600, "default": 200},
}


@router.post(
    "/v1/layout", openapi_extra=_openapi({**_MODE, **_PAGES}), responses=_RESPONSES, summary="Layout of a page"
)
async def layout(request: Request, state: StateDep) -> Response:
    """Boxes (original-image pixels), categories and reading order; with `mode=all` also each element's text."""
    return await _run(request, state, "layout")


@router.post(
    "/v1/ocr", openapi_extra=_openapi({**_BBOX, **_PAGES}), responses=_RESPONSES, summary="Text of a page as Markdown"
)
async def ocr(request: Request, state: StateDep) -> Response:
    """The page's text as Markdown; with `bbox`, the text of that region only (grounding OCR).

    A JSON body with `document` is Mistral's OCR request, answered in Mistral's shape (README: Mistral's OCR API).
    """
    payload = await json_payload(request, state.settings.max_body_bytes)
    if payload is not None and "document" in payload:
        mistral = await read_mistral_request(payload, state.settings, state.remote_images)
        answer = await run_unless_disconnected(request.receive, mistral_answer(state.documents, mistral))
        request.state.model = answer["model"]
        return Response(orjson.dumps(answer), media_type="application/json")
    return await _run(request, state, "ocr", payload)


def cache_scope(request: Request, state: GatewayState) -> str | None:
    """Whose result-cache entries a request reads and writes: its key's name (set by the key check), unless the
    operator shares the cache across keys; None (shared) on a gateway without keys."""
    if state.settings.cache_shared_across_keys:
        return None
    name: str | None = request.scope.get("state", {}).get("api_key_name")
    return name


async def _run(
    request: Request, state: GatewayState, task: DocumentTask, payload: dict[str, Any] | None = None
) -> Response:
    """The answer, unless the client leaves first: then its pages still waiting are cancelled and those at the
    model are dropped upstream (vLLM aborts them), as for chat. Jobs run on without their client."""
    settings = state.settings
    document = await read_document_request(
        request,
        max_body_bytes=settings.max_body_bytes,
        max_files=settings.max_batch_files,
        remote_images=state.remote_images,
        payload=payload,
    )
    options = check_options(document.options, task, files=len(document.files))
    model = resolve_model(state.documents, options, task)
    request.state.model = model.name
    scope = cache_scope(request, state)
    answer = _answer(state, task, document.files, options, model, scope)
    return await run_unless_disconnected(request.receive, answer)


async def _answer(
    state: GatewayState,
    task: DocumentTask,
    files: list[DocumentFile],
    options: DocumentOptions,
    model: ServedModel,
    scope: str | None,
) -> Response:
    if options.format == "json":
        answer = await json_answer(state.documents, model, task, files, options, cache_scope=scope)
        return Response(orjson.dumps(answer), media_type="application/json")
    [file] = files
    pages = await run_document(
        state.documents,
        model,
        task,
        file,
        options,
        pool=state.documents.render_pool,
        slots=state.documents.page_slots,
        keep_images=options.format == "png",
    )
    if options.format == "markdown":
        markdown = "\n\n".join(page.markdown for page in pages if page.markdown)
        return Response(markdown, media_type="text/markdown; charset=utf-8")
    if options.format == "csv":
        return Response(document_csv(pages), media_type="text/csv; charset=utf-8")
    [page] = pages  # png: check_options selected one page
    assert page.image is not None
    assert page.result is not None
    boxes = [(i, e.category, e.bbox) for i, e in enumerate(page.result.elements)]
    return Response(await asyncio.to_thread(draw_layout, page.image, boxes), media_type="image/png")
