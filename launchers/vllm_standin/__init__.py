"""A faithful vLLM stand-in: vLLM's OpenAI-compatible HTTP API without a GPU or a model.

Used by the gateway's end-to-end tests, `make demo` and benchmarks. Shapes, SSE framing, error
bodies, `/v1/models`, `/health` and `/metrics` follow vLLM's own (vllm/entrypoints/openai/*/protocol.py,
vllm/v1/metrics/loggers.py); replies, token counts and timings are simulated.
Test-control routes live under `/_standin/`.
"""

from .app import create_standin_app
from .chat_request import split_tokens
from .config import DEFAULT_REPLY, ErrorShape, Faults, Responder, StandinConfig
from .server import StandinServer
from .state import RecordedRequest, StandinState

__all__ = [
    "DEFAULT_REPLY",
    "ErrorShape",
    "Faults",
    "RecordedRequest",
    "Responder",
    "StandinConfig",
    "StandinServer",
    "StandinState",
    "create_standin_app",
    "split_tokens",
]
