"""POST /v1/ocr and POST /v1/layout: a page image in, its text and layout out, validated and repaired."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.deps import GatewayState, StateDep
from gateway.document_request import DocumentRequest, read_document_request
from gateway.document_response import RenderedPage, document_csv, document_json
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.images import prepare_image
from gateway.overlay import draw_layout
from gateway.page_pipeline import DocumentTask, run_page
from gateway.schemas import ERROR_RESPONSES
from gateway.served_models import ServedModel

router = APIRouter(tags=["Documents"])

DEFAULT_MODEL = "dots-ocr"

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
    image = {"type": "string", "description": "a data: URL or bare base64 of the image file"}
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
_MODE = {"mode": {"type": "string", "enum": ["all", "detect"], "default": "all"}}
_BBOX = {"bbox": {"type": "string", "description": "a region x1,y1,x2,y2 in original-image pixels: grounding OCR"}}


@router.post("/v1/layout", openapi_extra=_openapi(_MODE), responses=_RESPONSES, summary="Layout of a page")
async def layout(request: Request, state: StateDep) -> Response:
    """Boxes (original-image pixels), categories and reading order; with `mode=all` also each element's text."""
    return await _run(request, state, "layout")


@router.post("/v1/ocr", openapi_extra=_openapi(_BBOX), responses=_RESPONSES, summary="Text of a page as Markdown")
async def ocr(request: Request, state: StateDep) -> Response:
    """The page's text as Markdown; with `bbox`, the text of that region only (grounding OCR)."""
    return await _run(request, state, "ocr")


async def _run(request: Request, state: GatewayState, task: DocumentTask) -> Response:
    started = time.perf_counter()
    document = await read_document_request(request, max_body_bytes=state.settings.max_body_bytes)
    model = _model_for(state, document, task)
    request.state.model = model.name
    options = document.options
    if options.format in ("csv", "png") and task != "layout":
        raise InvalidRequest(f"format={options.format} draws layout elements: use /v1/layout", param="format")
    max_pixels = state.settings.max_upload_pixels
    # Decoding, resizing and encoding take tens of ms: off the event loop that relays everyone's streams.
    prepared = await asyncio.to_thread(
        prepare_image, document.data, model.image, param=document.param, max_pixels=max_pixels
    )
    prepared_at = time.perf_counter()
    result = await run_page(state.upstream, model, task, prepared, options, state.metrics)
    width, height = prepared.geometry.original
    pages = [RenderedPage(1, width, height, result)]
    if options.format == "markdown":
        return Response(pages[0].result.markdown, media_type="text/markdown; charset=utf-8")
    if options.format == "csv":
        return Response(document_csv(pages), media_type="text/csv; charset=utf-8")
    if options.format == "png":
        boxes = [(i, e.category, e.bbox) for i, e in enumerate(result.elements)]
        return Response(await asyncio.to_thread(draw_layout, prepared.image, boxes), media_type="image/png")
    finished = time.perf_counter()
    timings = {
        "prepare_ms": (prepared_at - started) * 1000,
        "upstream_ms": result.upstream_ms,
        "total_ms": (finished - started) * 1000,
    }
    body = document_json(f"doc-{uuid.uuid4().hex}", model.name, task, pages, timings)
    return Response(orjson.dumps(body), media_type="application/json")


def _model_for(state: GatewayState, document: DocumentRequest, task: DocumentTask) -> ServedModel:
    name = document.options.model or DEFAULT_MODEL
    model = state.models.get(name)
    if model is None:
        raise ModelNotFound(name)
    if task not in model.config.tasks:
        raise InvalidRequest(f"model {name} does not do {task}; its tasks are {model.config.tasks}", param="model")
    return model
