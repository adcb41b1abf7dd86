"""The jobs this browser session submitted, kept in its gr.State.

The gateway has no job listing yet (GET /v1/jobs is another issue), so the UI remembers what it submitted;
where the gateway does list jobs, the Jobs tab shows those too (see tabs/jobs.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_REMEMBERED = 50  # a session that submits more keeps the newest: the table stays readable


def remember_job(jobs: list[dict[str, Any]], job: Mapping[str, Any], *, filename: str | None = None) -> None:
    """Add the job, or update the entry with the same id in place (newest first)."""
    entry = {
        key: job.get(key) for key in ("id", "task", "model", "status", "created_at", "finished_at", "progress", "error")
    }
    for existing in jobs:
        if existing.get("id") == entry["id"]:
            existing.update({k: v for k, v in entry.items() if v is not None})
            if filename:
                existing["filename"] = filename
            return
    if filename:
        entry["filename"] = filename
    jobs.insert(0, entry)
    del jobs[MAX_REMEMBERED:]


def job_rows(jobs: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """One table row per job: id, file, task, model, status, pages done/total, error."""
    rows = []
    for job in jobs:
        progress = job.get("progress") or {}
        done, total = progress.get("pages_done"), progress.get("pages_total")
        pages = f"{done or 0}/{total}" if total else f"{done or 0}/?"
        error = job.get("error")
        message = error.get("message", "") if isinstance(error, Mapping) else ""
        rows.append(
            [
                job.get("id"),
                job.get("filename", ""),
                job.get("task"),
                job.get("model"),
                job.get("status"),
                pages,
                message,
            ]
        )
    return rows


JOB_COLUMNS = ["id", "file", "task", "model", "status", "pages", "error"]
