"""The job runner's start-up report of jobs a previous run left unfinished."""

from __future__ import annotations

from gateway.jobs.runner import resuming_message
from gateway.jobs.store import JobRecord


def _job(number: int) -> JobRecord:
    return JobRecord(
        id=f"job-{number:04d}",
        task="ocr",
        model="dots-ocr",
        status="queued",
        options={},
        error=None,
        pages_done=0,
        pages_total=1,
        created_at=0.0,
        updated_at=0.0,
        finished_at=None,
    )


def test_the_resuming_line_names_a_few_jobs_and_counts_the_rest() -> None:
    line = resuming_message([_job(n) for n in range(5000)])
    assert line.startswith("resuming 5000 job(s) left unfinished")
    assert "job-0000 (queued)" in line
    assert "job-0010" not in line
    assert line.endswith(" and 4990 more")
    assert len(line) < 400


def test_a_short_list_is_named_whole() -> None:
    line = resuming_message([_job(1), _job(2)])
    assert line.endswith(": job-0001 (queued), job-0002 (queued)")
