"""Jobs: a long document (or a batch) read in the background; poll its progress, fetch its result, or cancel it.

POST   /v1/jobs              the inputs of /v1/ocr and /v1/layout plus `task` (ocr | layout) -> 202 + Location
GET    /v1/jobs              the caller's jobs, newest first: `limit`, `after` (a job id), `status`
GET    /v1/jobs/{id}         the job: status, progress {pages_done, pages_total}, error when failed
GET    /v1/jobs/{id}/result  the JSON answer /v1/ocr or /v1/layout would give; 409 until the job succeeded
DELETE /v1/jobs/{id}         cancel (its upstream requests are dropped); 409 once finished

With API keys, a job belongs to the key that made it: another key gets 404 for it, as for a job that never was.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from gateway.documents.page import DocumentTask
from gateway.documents.pipeline import check_options
from gateway.documents.request import json_payload, read_document_request
from gateway.errors import InvalidRequest
from gateway.jobs.store import JobRecord, JobStatus
from gateway.mistral_ocr.request import read_mistral_request
from gateway.routes.dependencies import GatewayState, StateDep
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


def _owner(request: Request) -> str | None:
    """The name of the API key that made the request (set by the auth middleware); None without keys."""
    name: str | None = getattr(request.state, "api_key_name", None)
    return name


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
    """Read a document in the background (any number of pages up to GATEWAY_MAX_DOCUMENT_PAGES); JSON only.

    A JSON body with `document` is Mistral's OCR request (no `task`): the result is in Mistral's shape.
    """
    settings = state.settings
    owner = _owner(request)
    payload = await json_payload(request, settings.max_body_bytes)
    if payload is not None and "document" in payload:
        mistral = await read_mistral_request(payload, settings, state.remote_images)
        return await _accepted(request, state, await state.jobs.submit_mistral(mistral, owner=owner), owner)
    document = await read_document_request(
        request,
        max_body_bytes=settings.max_body_bytes,
        max_files=settings.max_batch_files,
        extra_fields=("task",),
        remote_images=state.remote_images,
        payload=payload,
    )
    task = document.extra.get("task")
    if task not in _TASKS:
        raise InvalidRequest("`task` is required: `ocr` or `layout`", param="task")
    if document.options.format != "json":
        raise InvalidRequest("a job's result is JSON: leave `format` out or set it to json", param="format")
    options = check_options(document.options, task, files=len(document.files))
    return await _accepted(
        request,
        state,
        await state.jobs.submit(task, document.files, options, owner=owner, cache_scope=cache_scope(request, state)),
        owner,
    )


async def _accepted(request: Request, state: GatewayState, job_id: str, owner: str | None) -> Response:
    job = await state.jobs.get(job_id, owner)
    request.state.model = job.model
    return _json(job_json(job), 202, {"Location": f"/v1/jobs/{job_id}"})


@router.get(
    "/v1/jobs/{id}",
    responses={200: {"description": "the job", "content": _JOB}, **ERROR_RESPONSES},
    summary="A job's status and progress",
)
async def get_job(id: str, request: Request, state: StateDep) -> Response:
    return _json(job_json(await state.jobs.get(id, _owner(request))))


@router.get(
    "/v1/jobs",
    responses={200: {"description": "a page of jobs, newest first", "content": _JOB}, **ERROR_RESPONSES},
    summary="List jobs",
)
async def list_jobs(
    request: Request,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 20,
    after: Annotated[str | None, Query(description="the last job id of the previous page")] = None,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
) -> Response:
    """The caller's jobs (with API keys: the key's own), newest first, OpenAI's list shape."""
    page = await state.jobs.listing(_owner(request), limit=limit, after=after, status=status)
    data = [job_json(job) for job in page.jobs]
    return _json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )


@router.get(
    "/v1/jobs/{id}/result",
    responses={
        200: {"description": "the document JSON, as /v1/ocr or /v1/layout answers", "content": _JOB},
        **ERROR_RESPONSES,
    },
    summary="A finished job's result",
)
async def get_job_result(id: str, request: Request, state: StateDep) -> Response:
    return Response(await state.jobs.result(id, _owner(request)), media_type="application/json")


@router.delete(
    "/v1/jobs/{id}",
    responses={200: {"description": "the job, cancelled", "content": _JOB}, **ERROR_RESPONSES},
    summary="Cancel a job",
)
async def cancel_job(id: str, request: Request, state: StateDep) -> Response:
    return _json(job_json(await state.jobs.cancel(id, _owner(request))))
