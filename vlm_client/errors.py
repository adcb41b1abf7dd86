"""The two ways a run can go wrong: the command line is unusable, or one file's request failed."""

from __future__ import annotations


class UsageError(Exception):
    """The run cannot start (no inputs, bad URL, unreachable gateway, bad option): one line, exit status 2."""


class RequestFailed(Exception):
    """One request for one file failed (an HTTP error, a timeout, a broken connection): that file fails."""
