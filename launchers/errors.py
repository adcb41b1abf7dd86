"""The launchers' one error: a problem explained in one line, exit code 1, never a traceback."""


class LauncherError(Exception):
    """A problem the launchers explain in one line and exit non-zero for (never a traceback)."""
