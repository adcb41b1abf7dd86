"""Jobs tab: the session's background jobs (and the gateway's list, where it has one), with cancel and download.

GET /v1/jobs does not exist on every gateway (listing is another issue): the client answers None on 404/405
and the tab shows the jobs this session submitted, refreshing each with GET /v1/jobs/{id}.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from vlm_ui.gateway_client import FINISHED_JOB_STATUSES, GatewayClient, GatewayError
from vlm_ui.notify import inform, warn
from vlm_ui.session_jobs import JOB_COLUMNS, job_rows, remember_job

_REFRESH_S = 3.0


def refreshed_jobs(
    client: GatewayClient, jobs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The session's jobs with fresh status, and the gateway's other jobs (None where it cannot list them)."""
    jobs = [dict(job) for job in jobs]
    for job in list(jobs):
        if job.get("status") in FINISHED_JOB_STATUSES or job.get("status") == "gone":
            continue  # a finished job does not change: no request
        try:
            remember_job(jobs, client.job(str(job["id"])))
        except GatewayError as exc:
            if exc.status != 404:
                raise
            job["status"] = "gone"  # expired (GATEWAY_JOB_RESULT_TTL_S) or another gateway's store
    listed = client.list_jobs()
    if listed is None:
        return jobs, None
    known = {job.get("id") for job in jobs}
    return jobs, [dict(job) for job in listed if job.get("id") not in known]


def _unfinished(jobs: list[dict[str, Any]]) -> bool:
    return any(job.get("status") not in FINISHED_JOB_STATUSES and job.get("status") != "gone" for job in jobs)


def build(client: GatewayClient, session_jobs: gr.State) -> None:
    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="jobs-refresh", scale=0)
        source = gr.Markdown("Jobs submitted from this browser session.", elem_id="jobs-source")
    table = gr.Dataframe(headers=JOB_COLUMNS, interactive=False, wrap=True, elem_id="jobs-table")
    with gr.Row():
        chosen = gr.Dropdown(choices=[], label="Job", allow_custom_value=True, elem_id="jobs-chosen")
        cancel = gr.Button("Cancel job", variant="stop", elem_id="jobs-cancel")
        download = gr.Button("Download result", elem_id="jobs-download")
    result = gr.File(label="Result (JSON)", interactive=False, elem_id="jobs-result")

    def refresh_jobs(jobs: list[dict[str, Any]] | None, current: str | None) -> tuple[Any, ...]:
        try:
            mine, others = refreshed_jobs(client, jobs or [])
        except GatewayError as exc:
            return gr.update(), gr.update(), gr.update(), _problem(exc.readable())
        shown = mine + (others or [])
        ids = [str(job["id"]) for job in shown]
        where = "this browser session's jobs" + (", then the others the gateway lists" if others is not None else "")
        return (
            job_rows(shown),
            mine,
            gr.update(choices=ids, value=current if current in ids else (ids[0] if ids else None)),
            f"{len(shown)} job(s): {where}.",
        )

    def tick(jobs: list[dict[str, Any]] | None, current: str | None) -> tuple[Any, ...]:
        """The timer's refresh: only while this session has unfinished jobs, and without toasts (a gateway that
        went away is said once in the status line, not in a new pop-up every few seconds)."""
        if not _unfinished(jobs or []):
            return gr.update(), gr.update(), gr.update(), gr.update()
        try:
            mine, _ = refreshed_jobs(client, jobs or [])
        except GatewayError as exc:
            return gr.update(), gr.update(), gr.update(), f"⚠️ Could not refresh: {exc.readable()}"
        return job_rows(mine), mine, gr.update(), gr.update()

    outputs = [table, session_jobs, chosen, source]
    refresh.click(refresh_jobs, [session_jobs, chosen], outputs, api_name="jobs")
    gr.Timer(_REFRESH_S).tick(tick, [session_jobs, chosen], outputs, api_visibility="private", show_progress="hidden")

    def cancel_job(job_id: str | None, jobs: list[dict[str, Any]] | None) -> tuple[Any, ...]:
        if not job_id:
            return gr.update(), gr.update(), _problem("Pick a job to cancel.")
        jobs = list(jobs or [])
        try:
            remember_job(jobs, client.cancel_job(job_id))
        except GatewayError as exc:
            return gr.update(), gr.update(), _problem(exc.readable())
        inform(f"Job {job_id} cancelled.")
        return job_rows(jobs), jobs, f"Job {job_id} cancelled."

    cancel.click(cancel_job, [chosen, session_jobs], [table, session_jobs, source], api_name="cancel_job")

    def download_result(job_id: str | None) -> tuple[Any, str]:
        if not job_id:
            return None, _problem("Pick a job to download.")
        try:
            document = client.job_result(job_id)
        except GatewayError as exc:
            return None, _problem(exc.readable())
        target = Path(tempfile.mkdtemp(prefix="vlm-ui-job-")) / f"{job_id}.json"
        target.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
        return str(target), f"Result of {job_id}: {target.name}."

    download.click(download_result, chosen, [result, source], api_name="job_result")


def _problem(message: str) -> str:
    """A failure, as a toast and in the tab's status line (which stays after the toast is gone)."""
    warn(message)
    return f"⚠️ {message}"
