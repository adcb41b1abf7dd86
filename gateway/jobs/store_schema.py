"""Opening the store: its schema and migrations (`PRAGMA user_version` is the version), applied on open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.jobs.store import Store
from gateway.models.registry import ConfigError

# Each entry migrates the schema from version i to i + 1; append, never edit.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            options TEXT NOT NULL,
            error TEXT,
            pages_done INTEGER NOT NULL DEFAULT 0,
            pages_total INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL
        )""",
        "CREATE INDEX jobs_by_status ON jobs (status, finished_at)",
        """CREATE TABLE job_files (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            param TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (job_id, idx)
        )""",
        """CREATE TABLE results (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            body BLOB NOT NULL
        )""",
        """CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            value BLOB NOT NULL,
            size INTEGER NOT NULL,
            last_used INTEGER NOT NULL
        )""",
        "CREATE INDEX cache_by_use ON cache (last_used)",
    ),
    # 2: jobs belong to the API key that made them (NULL: made while the gateway had no keys, or before this
    # version), and their stored bytes are counted for the per-key bound.
    (
        "ALTER TABLE jobs ADD COLUMN owner TEXT",
        "ALTER TABLE jobs ADD COLUMN input_bytes INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN result_bytes INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX jobs_by_owner ON jobs (owner, created_at, id)",
        "CREATE INDEX jobs_by_created ON jobs (created_at, id)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def prepare_schema(db: sqlite3.Connection) -> None:
    """Create or migrate the schema in place; ConfigError for a store written by a newer gateway."""
    # The first statement reads the header: a file that is not SQLite fails here ("file is not a database").
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the store's schema version {version} is newer than this gateway's ({SCHEMA_VERSION}); "
            "use a newer gateway or another GATEWAY_STORE_PATH"
        )
    if version == 0:
        # Only takes effect before the first table exists: lets a sweep hand freed pages back.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch to WAL mode (journal_mode is {mode})")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 10000")
    if version < SCHEMA_VERSION:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    db.execute("SELECT count(*) FROM jobs").fetchone()  # the tables are there and readable


def open_store(path: Path, *, cache_max_bytes: int) -> Store:
    """Open (creating or migrating) the store at `path`; ConfigError with a one-line reason if it cannot be used."""
    if str(path) in ("", ":memory:"):
        raise ConfigError("GATEWAY_STORE_PATH must name a file: the store exists to outlive the process")
    if path.is_dir():
        raise ConfigError(f"GATEWAY_STORE_PATH {path} is a directory, not a SQLite file")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the default lives in a per-user data folder
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"GATEWAY_STORE_PATH {path} cannot be opened: {exc}") from None
    try:
        prepare_schema(db)
    except sqlite3.Error as exc:
        db.close()
        raise ConfigError(f"GATEWAY_STORE_PATH {path} is not a usable SQLite database: {exc}") from None
    except ConfigError:
        db.close()
        raise
    return Store(db, path, cache_max_bytes=cache_max_bytes)
