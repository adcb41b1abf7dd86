"""Server-sent-event framing shared by the chat relay and the request deadline, which both end streams."""

from __future__ import annotations

from gateway.errors import GatewayError, openai_error_bytes

DONE = b"data: [DONE]\n\n"
EVENT_END = b"\n\n"


def closing_events(failure: GatewayError) -> bytes:
    """How a stream that cannot go on ends: one error event in the OpenAI shape, then `data: [DONE]`."""
    return b"data: " + openai_error_bytes(failure) + EVENT_END + DONE
