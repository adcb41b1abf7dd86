"""SQLite's errors as the gateway's: a full disk is a 507 `storage_full`, anything else a 503, never a traceback.

SQLite reports a full disk (ENOSPC, or a quota) as SQLITE_FULL, "database or disk is full", and rolls the
transaction back: the store stays as it was, so the request can simply be refused and a job's last write retried.
"""

from __future__ import annotations

import sqlite3

from gateway.errors import StorageFull, StoreUnavailable


def is_disk_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def store_failure(exc: sqlite3.Error, doing: str) -> StoreUnavailable:
    """The error a client gets when the store failed while `doing` (e.g. "storing the job")."""
    if is_disk_full(exc):
        return StorageFull(f"the gateway's store is out of disk space while {doing}; try again later")
    return StoreUnavailable(f"the gateway's store failed while {doing} ({exc}); try again later")
