"""The most telling line of a server's start-up log: why `vllm serve` died or never became healthy."""

from __future__ import annotations

import re
from pathlib import Path

from launchers.engines import ENGINES

_TAIL_BYTES = 1 << 20
_MAX_LINE = 500

# vLLM's start-up failures (as vLLM words them in its start-up log), most specific first, with the
# change that usually helps.
KNOWN_FAILURES: tuple[tuple[str, str], ...] = (
    ("Free memory on device", "another process holds GPU memory: stop it, or plan for a smaller card"),
    (
        "To serve at least one request with the model",
        "the KV cache cannot hold one request: lower max_model_len or give the model more memory",
    ),
    ("No available memory for the cache blocks", "nothing left for the KV cache: give the model more memory"),
    ("Error in memory profiling", "another process freed GPU memory while this one was profiling"),
    ("CUDA out of memory", "the GPU ran out of memory: plan for a smaller card or fewer models"),
    ("OutOfMemoryError", "the GPU ran out of memory: plan for a smaller card or fewer models"),
)
ENGINE_FAILURES = tuple(failure for engine in ENGINES.values() for failure in engine.failures)
_EXCEPTION_LINE = re.compile(r"^\S")
# vLLM prefixes its engine process's output, e.g. "(EngineCore_DP0 pid=4242) ".
_PROCESS_PREFIX = re.compile(r"^\([^)]*pid=\d+\) ?")


def read_from(path: Path, offset: int) -> str:
    """The log from `offset` on (its last MiB at most)."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(offset, size - _TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def telling_line(text: str) -> tuple[str, str | None]:
    """(the line that explains the failure, a hint or None); ("", None) for an empty log.

    The other engines' known lines (launchers/engines.py: llama-server, transformers serve) are looked for too.
    """
    lines = [line.strip() for line in text.splitlines()]
    for needle, hint in (*KNOWN_FAILURES, *ENGINE_FAILURES):
        for line in reversed(lines):
            if needle in line:
                return _short(line), hint
    raw = [_PROCESS_PREFIX.sub("", line) for line in text.splitlines()]
    starts = [i for i, line in enumerate(raw) if "Traceback (most recent call last)" in line]
    if starts:
        # The exception line is the first unindented line after the frames of the last traceback.
        for line in raw[starts[-1] + 1 :]:
            if line.strip() and _EXCEPTION_LINE.match(line):
                return _short(line.strip()), None
    for line in reversed(lines):
        if line:
            return _short(line), None
    return "", None


def _short(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 3] + "..."
