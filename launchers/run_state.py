"""What `up` started, kept in `<log-dir>/launchers-state.json` so `down` and `status` find it from another shell."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from launchers.errors import LauncherError

STATE_FILE = "launchers-state.json"
DEFAULT_LOG_DIR = "logs"

Kind = Literal["server", "gateway", "supervisor"]


@dataclass(frozen=True)
class ProcessRecord:
    """One process `up` started (or `up` itself): enough to check it is still the same process, and stop it."""

    name: str
    kind: Kind
    pid: int  # also the process group id: every process is started in its own session
    port: int | None
    check_url: str | None  # /health of a server, /ready of the gateway
    log: str | None
    started_at: float  # Unix time
    proc_start: int | None  # start time in clock ticks since boot (/proc/<pid>/stat), to spot a reused pid


@dataclass
class RunState:
    """Everything one `up` started, in start order."""

    supervisor: ProcessRecord
    processes: list[ProcessRecord] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"supervisor": asdict(self.supervisor), "processes": [asdict(p) for p in self.processes]})

    @classmethod
    def from_json(cls, text: str) -> RunState:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            supervisor=ProcessRecord(**raw["supervisor"]),
            processes=[ProcessRecord(**record) for record in raw["processes"]],
        )


def state_path(log_dir: str | os.PathLike[str]) -> Path:
    return Path(log_dir) / STATE_FILE


def write_state(path: Path, state: RunState) -> None:
    """Replace the file atomically, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(state.to_json(), encoding="utf-8")
    os.replace(partial, path)


def read_state(path: Path) -> RunState | None:
    """The recorded state, or None when nothing was recorded."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return RunState.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise LauncherError(f"{path} is not a state file written by `up` ({exc}); remove it by hand") from exc


def remove_state(path: Path) -> None:
    path.unlink(missing_ok=True)


def uptime_text(seconds: float) -> str:
    """How long a recorded process has run, as `status` prints it: 1h05m, or 3m07s under an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
