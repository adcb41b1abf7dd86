"""Jobs: a long document (or a batch) read in the background; poll its progress, fetch its result, or cancel it.

POST   /v1/jobs              the inputs of /v1/ocr and /v1/layout plus `task` (ocr | layout) -> 202 + Location
GET    /v1/jobs/{id}         the job: status, progress {pages_done, pages_total}, error when failed
GET    /v1/jobs/{id}/result  the JSON answer /v1/ocr or /v1/layout would give; 409 until the job succeeded
DELETE /v1/jobs/{id}         cancel (its upstream requests are dropped); 409 once finished
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.documents.page import DocumentTask
from gateway.documents.pipeline import check_options
from gateway.documents.request import read_document_request
from gateway.errors import InvalidRequest
from gateway.jobs.store import JobRecord
from gateway.routes.dependencies import StateDep
from gateway.routes.documents import _openapi, cache_scope
from gateway.routes.error_responses import ERROR_RESPONSES

router = APIRouter(tags=["Jobs"])

_TASKS: tuple[DocumentTask, ...] = ("ocr", "layout")
_JOB_FIELDS = {
    "task": {"type": "string", "enum": list(_TASKS), "description": "what to do with the document"},
    "mode": {"type": "string", "enum": ["all", "detect"], "default": "all", "description": "layout only"},
    "bbox": {"type": "string", "description": "ocr: a region x1,y1,x2,y2 in original-image pixels"},
    "pages": {"type": "string", "description": "PDF/TIFF pages, e.g. 1-3,7 (default all)"},
    "dpi": {"type": "integer", "minimum": 36, "maximum": 600, "default": 200},
}
_JOB: dict[str, Any] = {"application/json": {}}


def job_json(job: JobRecord) -> dict[str, Any]:
    """The public shape of a job."""
    body: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "task": job.task,
        "model": job.model,
        "created_at": int(job.created_at),
        "finished_at": int(job.finished_at) if job.finished_at is not None else None,
        "progress": {"pages_done": job.pages_done, "pages_total": job.pages_total},
    }
    if job.error is not None:
        body["error"] = job.error
    return body


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers)


@router.post(
    "/v1/jobs",
    status_code=202,
    openapi_extra=_openapi(_JOB_FIELDS),
    responses={202: {"description": "the job, queued", "content": _JOB}, **ERROR_RESPONSES},
    summary="Submit a document job",
)
async def create_job(request: Request, state: StateDep) -> Response:
    """Read a document in the background (any number of pages up to GATEWAY_MAX_DOCUMENT_PAGES); JSON only."""
    settings = state.settings
    document = await read_document_request(
        request,
        max_body_bytes=settings.max_body_bytes,
        max_files=settings.max_batch_files,
        extra_fields=("task",),
        remote_images=state.remote_images,
    )
    task = document.extra.get("task")
    if task not in _TASKS:
        raise InvalidRequest("`task` is required: `ocr` or `layout`", param="task")
    if document.options.format != "json":
        raise InvalidRequest("a job's result is JSON: leave `format` out or set it to json", param="format")
    options = check_options(document.options, task, files=len(document.files))
    job_id = await state.jobs.submit(task, document.files, options, cache_scope=cache_scope(request, state))
    job = await state.jobs.get(job_id)
    request.state.model = job.model
    return _json(job_json(job), 202, {"Location": f"/v1/jobs/{job_id}"})


@router.get(
    "/v1/jobs/{id}",
    responses={200: {"description": "the job", "content": _JOB}, **ERROR_RESPONSES},
    summary="A job's status and progress",
)
async def get_job(id: str, state: StateDep) -> Response:
    return _json(job_json(await state.jobs.get(id)))


@router.get(
    "/v1/jobs/{id}/result",
    responses={
        200: {"description": "the document JSON, as /v1/ocr or /v1/layout answers", "content": _JOB},
        **ERROR_RESPONSES,
    },
    summary="A finished job's result",
)
async def get_job_result(id: str, state: StateDep) -> Response:
    return Response(await state.jobs.result(id), media_type="application/json")


@router.delete(
    "/v1/jobs/{id}",
    responses={200: {"description": "the job, cancelled", "content": _JOB}, **ERROR_RESPONSES},
    summary="Cancel a job",
)
async def cancel_job(id: str, state: StateDep) -> Response:
    return _json(job_json(await state.jobs.cancel(id)))
