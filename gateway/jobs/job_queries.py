"""Reads over many jobs: a key's listing (newest first, by cursor) and its usage, for the per-key bounds.

Ownership is a column, not a filter the routes remember to add: every query here takes the owner. A job whose
owner is NULL was made while the gateway had no API keys (or by a gateway before schema 2); such a job was open
to anyone then, and stays visible to every key rather than vanishing when keys are turned on.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.jobs.store import JOB_COLUMNS, JobRecord, JobStatus, Store, job_record

_VISIBLE = "(owner IS NULL OR owner = ?)"


@dataclass(frozen=True)
class JobPage:
    """One page of a listing; `has_more` says whether a request with `after=<last id>` would find more."""

    jobs: list[JobRecord]
    has_more: bool


@dataclass(frozen=True)
class OwnerUsage:
    """What one key holds in the store now."""

    unfinished_jobs: int  # queued or running
    stored_bytes: int  # uploads of unfinished jobs, plus results kept
    next_expiry: float | None  # when the oldest finished job with a result is swept (None: none)


def visible_to(job: JobRecord, owner: str | None) -> bool:
    """Whether `owner` (a key's name; None when the gateway has no keys) may see the job."""
    return owner is None or job.owner is None or job.owner == owner


def list_jobs(
    store: Store, owner: str | None, *, limit: int, after: JobRecord | None, status: JobStatus | None
) -> JobPage:
    """The owner's jobs, newest first (ties by id), after the cursor job, optionally of one status."""
    where: list[str] = []
    args: list[object] = []
    if owner is not None:
        where.append(_VISIBLE)
        args.append(owner)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if after is not None:
        where.append("(created_at, id) < (?, ?)")
        args += [after.created_at, after.id]
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(
        f"SELECT {JOB_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit + 1)
    )
    jobs = [job_record(row) for row in rows]
    return JobPage(jobs[:limit], len(jobs) > limit)


def owner_usage(store: Store, owner: str, *, result_ttl_s: float) -> OwnerUsage:
    """The key's unfinished jobs and stored bytes (jobs with a NULL owner count for nobody)."""
    [(unfinished, stored, oldest)] = store.query(
        "SELECT "
        "COALESCE(SUM(status IN ('queued', 'running')), 0), "
        "COALESCE(SUM(CASE WHEN status IN ('queued', 'running') THEN input_bytes ELSE 0 END + result_bytes), 0), "
        "MIN(CASE WHEN result_bytes > 0 THEN finished_at END) "
        "FROM jobs WHERE owner = ?",
        (owner,),
    )
    return OwnerUsage(int(unfinished), int(stored), None if oldest is None else float(oldest) + result_ttl_s)
