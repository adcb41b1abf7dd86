"""Requests, images and parsers the contract tests share."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.real_vllm.backends import Backend

READ: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "read"}]}]


def png_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image_part(data: str, mime: str = "image/png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def with_images(*images: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*images, {"type": "text", "text": "read"}]}]


def chat(http: httpx.Client, backend: Backend, **body: Any) -> httpx.Response:
    body.setdefault("model", backend.model)
    headers = body.pop("headers", None)
    return http.post(f"{backend.base_url}/chat/completions", json=body, headers=headers)


def sse_payloads(raw: bytes) -> list[bytes]:
    """The events of a stream, checking vLLM's framing: each is one `data: ...` line and a blank line."""
    assert raw.endswith(b"\n\n"), raw[-80:]
    events = raw[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: "), event[:80]
        assert b"\n" not in event
    return [event[len(b"data: ") :] for event in events]


def stream_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.content)
    assert payloads[-1] == b"[DONE]"
    assert b"[DONE]" not in payloads[:-1]
    return [json.loads(payload) for payload in payloads[:-1]]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The OpenAI-shaped error body of a plain JSON (never SSE) error response."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert error["code"] == status
    return error


class ServesMetrics(Protocol):
    """A Backend or a RealVllmServer: anything with the root URL /metrics hangs off."""

    @property
    def root_url(self) -> str: ...


def metric_samples(http: httpx.Client, backend: ServesMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of /metrics by sample name (counters keep their `_total`)."""
    response = http.get(f"{backend.root_url}/metrics")
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def settled(read: Callable[[], float], quiet_s: float = 0.5, timeout_s: float = 30.0) -> float:
    """`read()` once it has stopped changing for `quiet_s`. vLLM records a finished request's counters after it
    has answered it, so a count read straight after an earlier test's request may still be about to move."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again = read()
        if again == value:
            return value
        value = again
    raise AssertionError(f"still changing after {timeout_s:.0f} s: {value}")
