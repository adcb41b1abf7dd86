"""The per-key bounds on jobs: unfinished jobs, and bytes held in the store (GATEWAY_MAX_*_PER_KEY).

Jobs are admitted in the background and cost GPU time and disk long after the request that made them; without a
bound one key could queue enough to starve every other key for hours, or fill the disk. Past a bound the answer
is a 429 with the time worth waiting: for stored bytes, until the key's oldest result is swept; for unfinished
jobs there is no honest estimate (it depends on pages and the GPU), so a short fixed wait.
"""

from __future__ import annotations

import math
import time

from gateway.errors import BodyTooLarge, RateLimited
from gateway.jobs.job_queries import owner_usage
from gateway.jobs.store import Store
from gateway.settings import Settings

_RETRY_QUEUED_S = 10


def check_owner_bounds(store: Store, settings: Settings, owner: str, new_bytes: int) -> None:
    """Raise RateLimited (429) when a new job of `new_bytes` would take `owner` past a bound (blocking)."""
    max_jobs, max_bytes = settings.max_queued_jobs_per_key, settings.max_job_bytes_per_key
    if max_bytes and new_bytes > max_bytes:  # could never be admitted: waiting would not help
        raise BodyTooLarge(f"the job's input ({new_bytes} bytes) exceeds this key's bound of {max_bytes} stored bytes")
    usage = owner_usage(store, owner, result_ttl_s=settings.job_result_ttl_s)
    if max_jobs and usage.unfinished_jobs >= max_jobs:
        raise RateLimited(
            f"key {owner} has {usage.unfinished_jobs} unfinished jobs, its bound (GATEWAY_MAX_QUEUED_JOBS_PER_KEY); "
            "wait for some to finish",
            code="too_many_jobs",
            headers={"Retry-After": str(_RETRY_QUEUED_S)},
        )
    if max_bytes and usage.stored_bytes + new_bytes > max_bytes:
        wait = _RETRY_QUEUED_S if usage.next_expiry is None else math.ceil(usage.next_expiry - time.time())
        raise RateLimited(
            f"key {owner} holds {usage.stored_bytes} bytes of jobs in the store; with this job's {new_bytes} that "
            f"passes its bound of {max_bytes} (GATEWAY_MAX_JOB_BYTES_PER_KEY); results are deleted "
            f"{settings.job_result_ttl_s:g} s after their job finishes",
            code="job_storage_exceeded",
            headers={"Retry-After": str(max(1, wait))},
        )
