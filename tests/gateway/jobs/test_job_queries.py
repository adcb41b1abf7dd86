"""Owners in the store: the schema-1 migration, listing by cursor, usage for the per-key bounds."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.documents.request import DocumentFile
from gateway.errors import BodyTooLarge, RateLimited
from gateway.jobs.job_queries import list_jobs, owner_usage, visible_to
from gateway.jobs.owner_bounds import check_owner_bounds
from gateway.jobs.store import Store
from gateway.jobs.store_schema import SCHEMA_VERSION, open_store
from gateway.settings import Settings

FILE = DocumentFile(b"x" * 100, "a.pdf", "file")
_V1_JOBS = """CREATE TABLE jobs (id TEXT PRIMARY KEY, task TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,
    options TEXT NOT NULL, error TEXT, pages_done INTEGER NOT NULL DEFAULT 0, pages_total INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL)"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "store.sqlite3", cache_max_bytes=0)
    yield opened
    opened.close()


def _job(store: Store, job_id: str, owner: str | None, created: float) -> None:
    store.create_job(job_id, "ocr", "dots-ocr", {}, [FILE], pages_total=1, owner=owner)
    with store._transaction() as db:  # a fixed creation time: the order is under test, not the clock
        db.execute("UPDATE jobs SET created_at = ? WHERE id = ?", (created, job_id))


def test_a_schema_1_store_is_migrated_and_its_jobs_have_no_owner(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(_V1_JOBS)
    db.execute("CREATE TABLE job_files (job_id TEXT, idx INTEGER, name TEXT, param TEXT, data BLOB)")
    db.execute("CREATE TABLE results (job_id TEXT PRIMARY KEY, body BLOB NOT NULL)")
    db.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value BLOB, size INTEGER, last_used INTEGER)")
    db.execute("INSERT INTO jobs VALUES ('job-old', 'ocr', 'dots-ocr', 'succeeded', '{}', NULL, 1, 1, 1, 1, 2)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = open_store(path, cache_max_bytes=0)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 2
        job = store.get_job("job-old")
        assert job is not None
        assert (job.owner, job.input_bytes, job.result_bytes) == (None, 0, 0)
        assert visible_to(job, "key-1")
        assert visible_to(job, None)
        assert [j.id for j in list_jobs(store, "key-1", limit=5, after=None, status=None).jobs] == ["job-old"]
    finally:
        store.close()


def test_listing_is_newest_first_by_cursor_and_only_the_owners(store: Store) -> None:
    for number in range(5):
        _job(store, f"job-a{number}", "alice", 100.0 + number)
    _job(store, "job-b", "bob", 200.0)
    first = list_jobs(store, "alice", limit=2, after=None, status=None)
    assert ([j.id for j in first.jobs], first.has_more) == (["job-a4", "job-a3"], True)
    second = list_jobs(store, "alice", limit=2, after=first.jobs[-1], status=None)
    assert [j.id for j in second.jobs] == ["job-a2", "job-a1"]
    last = list_jobs(store, "alice", limit=2, after=second.jobs[-1], status=None)
    assert ([j.id for j in last.jobs], last.has_more) == (["job-a0"], False)
    store.finish_job("job-a2", "cancelled")
    assert [j.id for j in list_jobs(store, "alice", limit=9, after=None, status="cancelled").jobs] == ["job-a2"]
    assert len(list_jobs(store, None, limit=9, after=None, status=None).jobs) == 6  # no keys: every job


def test_usage_counts_unfinished_jobs_and_stored_bytes(store: Store) -> None:
    _job(store, "job-1", "alice", time.time())
    _job(store, "job-2", "alice", time.time())
    store.finish_job("job-2", "succeeded", result=b"r" * 30)
    usage = owner_usage(store, "alice", result_ttl_s=60)
    assert (usage.unfinished_jobs, usage.stored_bytes) == (1, 100 + 30)
    assert usage.next_expiry is not None
    assert time.time() + 50 < usage.next_expiry <= time.time() + 60
    assert owner_usage(store, "bob", result_ttl_s=60).stored_bytes == 0


def test_bounds_refuse_with_retry_after(store: Store) -> None:
    _job(store, "job-1", "alice", time.time())
    settings = Settings(max_queued_jobs_per_key=1, max_job_bytes_per_key=1000, job_result_ttl_s=60)
    with pytest.raises(RateLimited) as caught:
        check_owner_bounds(store, settings, "alice", 10)
    assert caught.value.code == "too_many_jobs"
    assert caught.value.headers is not None
    assert int(caught.value.headers["Retry-After"]) > 0
    check_owner_bounds(store, settings, "bob", 10)  # another key's bound is its own
    store.finish_job("job-1", "succeeded", result=b"r" * 950)
    with pytest.raises(RateLimited) as caught:
        check_owner_bounds(store, settings, "alice", 100)
    assert caught.value.code == "job_storage_exceeded"
    assert caught.value.headers is not None
    assert 50 <= int(caught.value.headers["Retry-After"]) <= 60
    with pytest.raises(BodyTooLarge):
        check_owner_bounds(store, settings, "carol", 1001)
