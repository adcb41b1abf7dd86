"""The gateway's durable store: jobs (with their uploads, so a job outlives a restart), results and a result cache.

One SQLite file (stdlib `sqlite3`) in WAL mode, `synchronous=FULL`: every write is one transaction, so a crash
(kill -9, power loss) leaves the last committed state, never a torn one. One connection, guarded by a lock; the
methods block, so async code calls them through `asyncio.to_thread`.

    jobs       id, task, model, status, options, error, pages_done/total, created/updated/finished, owner (the
               API key's name), input_bytes and result_bytes (for the per-key bound on stored bytes)
    job_files  the uploaded bytes of a job, deleted as soon as it finishes (kept only to resume it)
    results    a finished job's JSON answer
    cache      document answers by content key, bounded in bytes, least recently used evicted first

The schema version is `PRAGMA user_version`; `open_store` (store_schema.py) creates or migrates the schema and
refuses (ConfigError, one line) a file that is not a SQLite database or was written by a newer gateway.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from gateway.documents.request import DocumentFile

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")
UNFINISHED: tuple[JobStatus, ...] = ("queued", "running")


@dataclass(frozen=True)
class JobRecord:
    """One job as stored."""

    id: str
    task: str
    model: str
    status: JobStatus
    options: dict[str, Any]
    error: dict[str, Any] | None
    pages_done: int
    pages_total: int
    created_at: float
    updated_at: float
    finished_at: float | None
    owner: str | None = None  # the name of the API key that made it; None without keys (or before schema 2)
    input_bytes: int = 0
    result_bytes: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


JOB_COLUMNS = (
    "id, task, model, status, options, error, pages_done, pages_total, created_at, updated_at, finished_at, "
    "owner, input_bytes, result_bytes"
)


def job_record(row: tuple[Any, ...]) -> JobRecord:
    job_id, task, model, status, options, error, done, total, created, updated, finished, owner, size, result = row
    return JobRecord(
        job_id,
        task,
        model,
        cast(JobStatus, status),
        orjson.loads(options),
        orjson.loads(error) if error is not None else None,
        done,
        total,
        created,
        updated,
        finished,
        owner,
        size,
        result,
    )


class Store:
    """The open store. Every method is blocking and thread-safe; call it via `asyncio.to_thread` from async code."""

    def __init__(self, db: sqlite3.Connection, path: Path, *, cache_max_bytes: int) -> None:
        self._db = db
        self.path = path
        self.cache_max_bytes = cache_max_bytes
        self._lock = threading.Lock()
        row = db.execute("SELECT COALESCE(MAX(last_used), 0) FROM cache").fetchone()
        self._clock: int = row[0]  # a logical clock: LRU order without ties between calls in the same tick

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or none of it reaches the file."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (jobs/job_queries.py builds its listing and usage queries on this)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- jobs ---------------------------------------------------------------------------------------------

    def create_job(
        self,
        job_id: str,
        task: str,
        model: str,
        options: dict[str, Any],
        files: list[DocumentFile],
        *,
        pages_total: int,
        owner: str | None = None,
    ) -> JobRecord:
        """Store a new queued job with its uploads."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, 'queued', ?, NULL, 0, ?, ?, ?, NULL, ?, 0, 0)",
                (job_id, task, model, orjson.dumps(options).decode(), pages_total, now, now, owner),
            )
            db.executemany(
                "INSERT INTO job_files (job_id, idx, name, param, data) VALUES (?, ?, ?, ?, ?)",
                [(job_id, i, file.name, file.param, file.data) for i, file in enumerate(files)],
            )
            db.execute(
                "UPDATE jobs SET input_bytes = (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM job_files WHERE job_id = ?) "
                "WHERE id = ?",
                (job_id, job_id),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> JobRecord | None:
        rows = self.query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return job_record(rows[0]) if rows else None

    def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs left queued or running (by a previous process, at start-up), oldest first."""
        rows = self.query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        )
        return [job_record(row) for row in rows]

    def job_files(self, job_id: str) -> list[DocumentFile]:
        rows = self.query("SELECT data, name, param FROM job_files WHERE job_id = ? ORDER BY idx", (job_id,))
        return [DocumentFile(bytes(data), name, param) for data, name, param in rows]

    def requeue_job(self, job_id: str) -> None:
        """Back to queued with no progress (a job resumed after a restart starts its pages again)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', pages_done = 0, updated_at = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (time.time(), job_id),
            )

    def start_job(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'running', pages_done = 0, updated_at = ? WHERE id = ? AND status = 'queued'",
                (time.time(), job_id),
            )

    def set_progress(self, job_id: str, pages_done: int) -> None:
        """Record pages done; never lowers the count (progress writes may arrive out of order)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET pages_done = MAX(pages_done, ?), updated_at = ? WHERE id = ? AND status = 'running'",
                (pages_done, time.time(), job_id),
            )

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: bytes | None = None,
        error: dict[str, Any] | None = None,
        pages_done: int | None = None,
    ) -> bool:
        """Finish an unfinished job (result or error) and drop its uploads, in one transaction.

        False when the job was already finished (the first outcome wins) or is unknown.
        """
        assert status in FINISHED
        now = time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, error = ?, pages_done = COALESCE(?, pages_done), updated_at = ?, "
                "finished_at = ?, result_bytes = ? WHERE id = ? AND status IN ('queued', 'running')",
                (
                    status,
                    orjson.dumps(error).decode() if error else None,
                    pages_done,
                    now,
                    now,
                    len(result) if result is not None else 0,
                    job_id,
                ),
            )
            if cursor.rowcount == 0:
                return False
            db.execute("DELETE FROM job_files WHERE job_id = ?", (job_id,))
            if result is not None:
                db.execute("INSERT OR REPLACE INTO results (job_id, body) VALUES (?, ?)", (job_id, result))
        return True

    def get_result(self, job_id: str) -> bytes | None:
        rows = self.query("SELECT body FROM results WHERE job_id = ?", (job_id,))
        return bytes(rows[0][0]) if rows else None

    def sweep(self, finished_before: float) -> int:
        """Delete finished jobs (with their results) that finished before `finished_before`; how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?",
                (finished_before,),
            )
            deleted = cursor.rowcount
        if deleted:
            with self._lock:
                self._db.execute("PRAGMA incremental_vacuum")  # give the freed pages back to the file system
        return deleted

    # -- cache --------------------------------------------------------------------------------------------

    def cache_get(self, key: str) -> bytes | None:
        """The cached value, marked as just used; None on a miss or when the cache is disabled."""
        if self.cache_max_bytes == 0:
            return None
        with self._transaction() as db:
            row = db.execute("SELECT value FROM cache WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self._clock += 1
            db.execute("UPDATE cache SET last_used = ? WHERE key = ?", (self._clock, key))
            return bytes(row[0])

    def cache_put(self, key: str, value: bytes) -> None:
        """Store a value, evicting the least recently used entries to stay within `cache_max_bytes`.

        A value larger than the whole budget is not stored.
        """
        size = len(value)
        if size > self.cache_max_bytes:
            return
        with self._transaction() as db:
            (others,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM cache WHERE key != ?", (key,)).fetchone()
            excess = others + size - self.cache_max_bytes
            if excess > 0:
                victims: list[tuple[str]] = []
                for victim, victim_size in db.execute(
                    "SELECT key, size FROM cache WHERE key != ? ORDER BY last_used", (key,)
                ):
                    victims.append((victim,))
                    excess -= victim_size
                    if excess <= 0:
                        break
                db.executemany("DELETE FROM cache WHERE key = ?", victims)
            self._clock += 1
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, size, last_used) VALUES (?, ?, ?, ?)",
                (key, value, size, self._clock),
            )

    def cache_bytes(self) -> int:
        """Bytes of cached values."""
        return int(self.query("SELECT COALESCE(SUM(size), 0) FROM cache")[0][0])

    def schema_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])
