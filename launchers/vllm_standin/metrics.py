"""`GET /metrics`: the vLLM series a router reads, in Prometheus text format, written by hand.

Names, help texts and labels follow vllm/v1/metrics/loggers.py; counters carry the `_total`
suffix that prometheus_client adds. Writing the text directly keeps a scrape cheap.
"""

from __future__ import annotations

from .config import StandinConfig
from .state import StandinState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
)
_TOKEN_COUNTERS = (
    ("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "Number of generation tokens processed."),
)


def label_set(config: StandinConfig) -> str:
    """The `model_name`/`engine` labels every vLLM series carries (one engine, index 0)."""
    name = config.served_name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'model_name="{name}",engine="0"'


def render_metrics(config: StandinConfig, state: StandinState, labels: str) -> bytes:
    """The exposition text for the current state; `labels` comes from `label_set`."""
    running, waiting, prompt, generation, finished = state.metrics_snapshot()
    # The simulated KV cache fills with running requests: one slot's worth each.
    gauges = (running, waiting, running / state.max_num_seqs)
    lines: list[str] = []
    for (name, doc), value in zip(_GAUGES, gauges, strict=True):
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge", f"{name}{{{labels}}} {float(value)!r}"]
    for (name, doc), value in zip(_TOKEN_COUNTERS, (prompt, generation), strict=True):
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter", f"{name}{{{labels}}} {float(value)!r}"]
    name = "vllm:request_success_total"
    lines += [f"# HELP {name} Count of successfully processed requests.", f"# TYPE {name} counter"]
    lines += [f'{name}{{{labels},finished_reason="{reason}"}} {float(count)!r}' for reason, count in finished.items()]
    return ("\n".join(lines) + "\n").encode()
