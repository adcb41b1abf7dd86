"""`GET /metrics`: the vLLM series a router reads, in Prometheus text format, written by hand.

Names, help texts and labels follow vllm/v1/metrics/loggers.py as vLLM 0.32 exposes them (labels in
prometheus_client's order: `engine`, then `model_name`); counters carry the `_total` suffix that
prometheus_client adds. Writing the text directly keeps a scrape cheap.
"""

from __future__ import annotations

from .config import StandinConfig
from .state import FINISH_REASONS, StandinState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
)
_WAITING_BY_REASON = "vllm:num_requests_waiting_by_reason"
_TOKEN_COUNTERS = (
    ("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "Number of generation tokens processed."),
)


def label_set(config: StandinConfig) -> str:
    """The `engine`/`model_name` labels every vLLM series carries (one engine, index 0)."""
    name = config.served_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'engine="0",model_name="{name}"'


def render_metrics(config: StandinConfig, state: StandinState, labels: str) -> bytes:
    """The exposition text for the current state; `labels` comes from `label_set`."""
    running, waiting, prompt, generation, finished = state.metrics_snapshot()
    # The simulated KV cache fills with running requests: one slot's worth each.
    gauges = (running, waiting, running / state.max_num_seqs)
    lines: list[str] = []
    for (name, doc), value in zip(_GAUGES, gauges, strict=True):
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name}{{{labels}}} {float(value)!r}"]
    # Every simulated wait is for a free slot ("capacity"); vLLM also reports "deferred" requests.
    lines += [
        f"# HELP {_WAITING_BY_REASON} Number of requests waiting to be processed, by reason.",
        f"# TYPE {_WAITING_BY_REASON} gauge",
        f'{_WAITING_BY_REASON}{{{labels},reason="capacity"}} {float(waiting)!r}',
        f'{_WAITING_BY_REASON}{{{labels},reason="deferred"}} 0.0',
    ]
    for (name, doc), value in zip(_TOKEN_COUNTERS, (prompt, generation), strict=True):
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter", f"{name}{{{labels}}} {float(value)!r}"]
    name = "vllm:request_success_total"
    lines += [f"# HELP {name} Count of successfully processed requests.", f"# TYPE {name} counter"]
    lines += [
        f'{name}{{engine="0",finished_reason="{reason}",{labels.split(",", 1)[1]}}} {float(finished[reason])!r}'
        for reason in FINISH_REASONS
    ]
    return ("\n".join(lines) + "\n").encode()
