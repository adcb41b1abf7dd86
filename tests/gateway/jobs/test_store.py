"""The SQLite store: schema, transactions, expiry, the bounded LRU cache, refusal of a bad file, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.documents.request import DocumentFile
from gateway.jobs.store import Store
from gateway.jobs.store_schema import SCHEMA_VERSION, open_store
from gateway.models.registry import ConfigError
from gateway.settings import PROJECT_ROOT, Settings

FILE = DocumentFile(b"%PDF-1.7 not really", "a.pdf", "file")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "store.sqlite3", cache_max_bytes=100)
    yield opened
    opened.close()


def _new_job(store: Store, job_id: str = "job-1") -> None:
    store.create_job(job_id, "layout", "dots-ocr", {"pages": "1-2"}, [FILE, FILE], pages_total=2)


def test_a_new_store_has_the_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    open_store(path, cache_max_bytes=0).close()
    db = sqlite3.connect(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"jobs", "job_files", "results", "cache"} <= tables
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    # Reopening an up-to-date store changes nothing.
    reopened = open_store(path, cache_max_bytes=0)
    assert reopened.schema_version() == SCHEMA_VERSION
    reopened.close()


def test_a_job_round_trips_and_finishing_it_drops_its_uploads(store: Store) -> None:
    _new_job(store)
    job = store.get_job("job-1")
    assert job is not None
    assert (job.status, job.task, job.model, job.options, job.pages_total) == (
        "queued",
        "layout",
        "dots-ocr",
        {"pages": "1-2"},
        2,
    )
    assert store.job_files("job-1") == [FILE, FILE]
    assert [j.id for j in store.unfinished_jobs()] == ["job-1"]
    store.start_job("job-1")
    store.set_progress("job-1", 2)
    store.set_progress("job-1", 1)  # out-of-order progress never lowers the count
    assert store.get_job("job-1").pages_done == 2  # type: ignore[union-attr]
    assert store.finish_job("job-1", "succeeded", result=b'{"ok": true}')
    assert not store.finish_job("job-1", "cancelled")  # the first outcome wins
    job = store.get_job("job-1")
    assert job is not None
    assert job.status == "succeeded"
    assert job.finished_at is not None
    assert store.job_files("job-1") == []
    assert store.get_result("job-1") == b'{"ok": true}'
    assert store.unfinished_jobs() == []


def test_a_failed_write_leaves_nothing_behind(store: Store) -> None:
    broken = DocumentFile(None, "b.pdf", "file")  # type: ignore[arg-type]  # violates NOT NULL mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.create_job("job-2", "ocr", "dots-ocr", {}, [FILE, broken], pages_total=1)
    assert store.get_job("job-2") is None
    assert store.job_files("job-2") == []
    _new_job(store, "job-3")  # the store is still usable
    with pytest.raises(sqlite3.IntegrityError):
        _new_job(store, "job-3")  # a duplicate id
    assert len(store.job_files("job-3")) == 2


def test_the_sweep_deletes_only_old_finished_jobs_with_their_results(store: Store) -> None:
    for job_id in ("old", "running"):
        _new_job(store, job_id)
    store.finish_job("old", "succeeded", result=b"{}")
    assert store.sweep(time.time() - 60) == 0  # finished just now: kept
    assert store.sweep(time.time() + 1) == 1
    assert store.get_job("old") is None
    assert store.get_result("old") is None
    assert store.get_job("running") is not None


def test_the_cache_evicts_the_least_recently_used_by_bytes(store: Store) -> None:
    store.cache_put("a", b"a" * 40)
    store.cache_put("b", b"b" * 40)
    assert store.cache_get("a") == b"a" * 40  # a is now more recent than b
    store.cache_put("c", b"c" * 40)  # 120 > 100 bytes: b goes
    assert store.cache_get("b") is None
    assert store.cache_get("a") == b"a" * 40
    assert store.cache_get("c") == b"c" * 40
    assert store.cache_bytes() == 80
    store.cache_put("a", b"A" * 90)  # replacing a value counts its new size only: c goes
    assert store.cache_get("c") is None
    assert store.cache_get("a") == b"A" * 90
    store.cache_put("huge", b"h" * 101)  # larger than the whole budget: not stored, nothing evicted
    assert store.cache_get("huge") is None
    assert store.cache_bytes() == 90


def test_a_cache_of_zero_bytes_is_off(tmp_path: Path) -> None:
    store = open_store(tmp_path / "off.sqlite3", cache_max_bytes=0)
    store.cache_put("a", b"x")
    assert store.cache_get("a") is None
    store.close()


def test_a_file_that_is_not_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not a database, just some text that happens to be here\n" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database") as caught:
        open_store(path, cache_max_bytes=0)
    assert "\n" not in str(caught.value)


def test_a_store_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer than this gateway"):
        open_store(path, cache_max_bytes=0)


def test_the_store_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must name a file"):
        Settings(store_path=":memory:")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        open_store(Path(":memory:"), cache_max_bytes=0)
    with pytest.raises(ConfigError, match="is a directory"):
        open_store(tmp_path, cache_max_bytes=0)


def test_the_gateway_refuses_to_start_on_a_garbage_store(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(os.urandom(8192))
    env = {**os.environ, "GATEWAY_STORE_PATH": str(path), "GATEWAY_MODELS": "dots-ocr", "GATEWAY_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "GATEWAY_STORE_PATH" in lines[0]
    assert "not a usable SQLite database" in lines[0]


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gateway.documents.request import DocumentFile
    from gateway.jobs.store_schema import open_store

    store = open_store(Path(sys.argv[1]), cache_max_bytes=2_000_000)
    blob = bytes(range(256)) * 2000  # 512 KB per file: transactions span many pages
    i = 0
    while True:
        job = f"job-{i}"
        store.create_job(job, "ocr", "dots-ocr", {}, [DocumentFile(blob, "x", "file")] * 3, pages_total=3)
        store.cache_put(f"key-{i}", blob)
        if i % 2:
            store.finish_job(job, "succeeded", result=b"{}")
        if i == 3:
            print("writing", flush=True)
        i += 1
    """
)


def test_kill_9_during_writes_leaves_a_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        time.sleep(0.5)  # well inside the write loop
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        if writer.stdout is not None:
            writer.stdout.close()
    store = open_store(path, cache_max_bytes=2_000_000)
    try:
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
        jobs = store.unfinished_jobs()
        assert jobs
        for job in jobs:  # every committed job is whole: its three uploads are there
            assert len(store.job_files(job.id)) == 3
        assert 0 < store.cache_bytes() <= 2_000_000
    finally:
        store.close()
