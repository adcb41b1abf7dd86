"""A typed client of the gateway's public HTTP API: the only way the UI reaches a model.

The UI imports nothing from `gateway/`, so it works against any gateway (another host, another version) and
the same code paths a third-party client would use are the ones exercised. Every non-2xx answer becomes a
`GatewayError` carrying the OpenAI error fields; a gateway that cannot be reached becomes one too (status 0),
so the tabs have a single thing to turn into a readable message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

DocumentTask = Literal["layout", "ocr"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED_JOB_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# Documents can take minutes on a real GPU (many pages, retries at higher temperature); the gateway has its
# own per-request deadline (GATEWAY_REQUEST_TIMEOUT_S, 600 s by default), so the UI waits a little longer
# than that and lets the gateway be the one that says "timeout" in its own words.
_DOCUMENT_TIMEOUT = httpx.Timeout(connect=5.0, read=660.0, write=60.0, pool=10.0)
_CONTROL_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A stream may be silent for as long as vLLM takes to produce the next token; same reasoning as above.
_STREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=660.0, write=60.0, pool=10.0)

_MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
}


class GatewayError(Exception):
    """An error answer from the gateway (OpenAI shape), or no answer at all (`status` 0)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        error_type: str | None = None,
        code: str | int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param

    def __str__(self) -> str:
        return self.readable()

    def readable(self) -> str:
        """One line for a person: what the gateway said, and which field it named."""
        if self.status == 0:
            return self.message
        label = str(self.code or self.error_type or "error")
        where = f" (field `{self.param}`)" if self.param else ""
        return f"Gateway error {self.status} {label}: {self.message}{where}"

    @classmethod
    def from_response(cls, response: httpx.Response) -> GatewayError:
        """Read the OpenAI error envelope; anything else (a proxy's HTML page) still gives a sane message."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return cls.from_body(body["error"], status=response.status_code)
        text = response.text.strip()[:200] or response.reason_phrase
        return cls(text, status=response.status_code)

    @classmethod
    def from_body(cls, error: Mapping[str, Any], *, status: int) -> GatewayError:
        code = error.get("code")
        return cls(
            str(error.get("message") or "no message"),
            status=status,
            error_type=str(error["type"]) if error.get("type") else None,
            code=code if isinstance(code, str | int) else None,
            param=str(error["param"]) if error.get("param") else None,
        )


@dataclass(frozen=True)
class ChatDelta:
    """One piece of a streamed answer: text to append, and the usage when the last chunk carries it."""

    text: str = ""
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class DocumentOptions:
    """The form fields of /v1/layout, /v1/ocr and /v1/jobs that the UI sets; None leaves the gateway's default."""

    model: str | None = None
    mode: Literal["all", "detect"] | None = None
    bbox: str | None = None
    pages: str | None = None
    dpi: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def form(self) -> dict[str, str]:
        values = {
            "model": self.model,
            "mode": self.mode,
            "bbox": self.bbox,
            "pages": self.pages,
            "dpi": str(self.dpi) if self.dpi else None,
        }
        return {k: v for k, v in values.items() if v} | self.extra


class GatewayClient:
    """Synchronous on purpose: Gradio runs plain functions in its thread pool, and httpx.Client is thread-safe."""

    def __init__(self, base_url: str, api_key: str | None = None, *, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):  # accept the OpenAI-style base URL too
            self.base_url = self.base_url[: -len("/v1")]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=_CONTROL_TIMEOUT, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"The gateway at {self.base_url} did not answer in time ({type(exc).__name__})."
            ) from exc
        except httpx.TransportError as exc:
            raise GatewayError(f"Cannot reach the gateway at {self.base_url}: {exc or type(exc).__name__}.") from exc
        if response.is_error:
            raise GatewayError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise GatewayError(f"The gateway answered {path} with something that is not JSON.", status=502) from exc

    # -- models -----------------------------------------------------------------------------------------

    def models(self, *, verbose: bool = True) -> dict[str, Any]:
        """GET /v1/models: `data` (served models, live status) and, verbose, `catalog` (every configured one)."""
        body = self._json("GET", "/v1/models", params={"verbose": "true"} if verbose else None)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise GatewayError("The gateway's model list has no `data` array.", status=502)
        return body

    # -- documents ---------------------------------------------------------------------------------------

    def document(self, task: DocumentTask, path: Path, options: DocumentOptions) -> dict[str, Any]:
        """POST /v1/layout or /v1/ocr with the file; the JSON document answer."""
        body = self._json("POST", f"/v1/{task}", files=_file_part(path), data=options.form(), timeout=_DOCUMENT_TIMEOUT)
        if not isinstance(body, dict):
            raise GatewayError("A batch answer came back for one file.", status=502)
        return body

    # -- jobs -------------------------------------------------------------------------------------------

    def submit_job(self, task: DocumentTask, path: Path, options: DocumentOptions) -> dict[str, Any]:
        """POST /v1/jobs: 202 with the queued job."""
        form = options.form() | {"task": task}
        body: dict[str, Any] = self._json(
            "POST", "/v1/jobs", files=_file_part(path), data=form, timeout=_DOCUMENT_TIMEOUT
        )
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}")
        return body

    def job_result(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}/result", timeout=_DOCUMENT_TIMEOUT)
        return body

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("DELETE", f"/v1/jobs/{job_id}")
        return body

    def list_jobs(self) -> list[dict[str, Any]] | None:
        """GET /v1/jobs, or None where the gateway has no listing (404/405): the caller keeps its own list."""
        try:
            body = self._json("GET", "/v1/jobs")
        except GatewayError as exc:
            if exc.status in (404, 405):
                return None
            raise
        jobs = body.get("data") if isinstance(body, dict) else body
        if not isinstance(jobs, list):
            return None
        return [job for job in jobs if isinstance(job, dict)]

    # -- chat -------------------------------------------------------------------------------------------

    def chat_stream(self, body: Mapping[str, Any]) -> Iterator[ChatDelta]:
        """POST /v1/chat/completions with stream=true; the deltas as they arrive.

        The gateway reports a failure after the stream began as one `data: {"error": …}` event: that becomes a
        GatewayError here, like an error status before it began.
        """
        request = {**body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            with self._http.stream("POST", "/v1/chat/completions", json=request, timeout=_STREAM_TIMEOUT) as response:
                if response.is_error:
                    response.read()
                    raise GatewayError.from_response(response)
                for line in response.iter_lines():
                    delta = _parse_event(line)
                    if delta is _DONE:
                        return
                    if delta is not None:
                        yield delta
        except httpx.TimeoutException as exc:
            raise GatewayError(f"The gateway at {self.base_url} stopped answering ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise GatewayError(f"Cannot reach the gateway at {self.base_url}: {exc or type(exc).__name__}.") from exc


_DONE = ChatDelta(text="\x00done")


def _parse_event(line: str) -> ChatDelta | None:
    """One SSE line to a delta, `_DONE`, or None for comments, blank lines and chunks without content."""
    if not line.startswith("data:"):
        return None
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return _DONE
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    if not isinstance(chunk, dict):
        return None
    if isinstance(chunk.get("error"), dict):
        error = chunk["error"]
        status = error.get("code") if isinstance(error.get("code"), int) else 500
        raise GatewayError.from_body(error, status=int(status))
    text = ""
    finish_reason = None
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        text += delta.get("content") or ""
        finish_reason = choice.get("finish_reason") or finish_reason
    usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None
    if not text and usage is None and finish_reason is None:
        return None
    return ChatDelta(text=text, usage=usage, finish_reason=finish_reason)


def _file_part(path: Path) -> dict[str, tuple[str, bytes, str]]:
    media_type = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return {"file": (path.name, path.read_bytes(), media_type)}
