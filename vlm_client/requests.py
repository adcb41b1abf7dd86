"""Talking to the gateway: checking it is there, and one request (a file, or a range of its pages) → JSON.

Every document request asks for `format=json`: the Markdown and CSV outputs are derived from the JSON on the
client, so a file is read once whatever outputs are wanted, and a PDF's page ranges can be merged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from vlm_client.errors import RequestFailed, UsageError

Task = Literal["ocr", "layout"]


@dataclass(frozen=True)
class RequestOptions:
    """The form fields every request of a run carries."""

    task: Task
    model: str | None
    mode: Literal["all", "detect"]
    dpi: int


def gateway_root(url: str) -> str:
    """'http://host:8000/v1/' -> 'http://host:8000'; raise UsageError for anything that is not an http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--gateway {url!r} is not an http(s) URL such as http://127.0.0.1:8000")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise UsageError(f"--gateway {url!r} has an invalid port") from None
    path = parts.path.rstrip("/").removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


async def check_gateway(client: httpx.AsyncClient, root: str, options: RequestOptions) -> None:
    """Fail fast (UsageError) when the gateway cannot be reached, is not a gateway, or lacks the model/task."""
    try:
        response = await client.get(f"{root}/v1/models", timeout=10.0)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the gateway at {root}: {_describe(exc)}") from None
    if response.status_code != 200:
        raise UsageError(f"{root}/v1/models answered HTTP {response.status_code}: is this the gateway?")
    try:
        models = {card["id"]: card for card in response.json()["data"]}
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{root}/v1/models did not answer a model list: is this the gateway?") from None
    if options.model is None:
        return  # the gateway picks its default model and says so if it cannot serve it
    card = models.get(options.model)
    if card is None:
        raise UsageError(f"the gateway does not serve {options.model!r}; it serves {', '.join(sorted(models))}")
    tasks = card.get("tasks")
    if isinstance(tasks, list) and options.task not in tasks:
        raise UsageError(f"model {options.model!r} does not do {options.task}; its tasks are {', '.join(tasks)}")


async def read_document(
    client: httpx.AsyncClient, root: str, path: Path, options: RequestOptions, pages: str | None
) -> dict[str, Any]:
    """The gateway's JSON document for `path` (only `pages` if given); RequestFailed says why there is none."""
    # Read inside the request slot, not up front: only the files in flight are held in memory.
    data = await asyncio.to_thread(path.read_bytes)
    fields = {"format": "json", "dpi": str(options.dpi)}
    if options.model is not None:
        fields["model"] = options.model
    if options.task == "layout":
        fields["mode"] = options.mode
    if pages is not None:
        fields["pages"] = pages
    files = {"file": (path.name, data, "application/octet-stream")}
    try:
        response = await client.post(f"{root}/v1/{options.task}", data=fields, files=files)
    except httpx.HTTPError as exc:
        raise RequestFailed(_describe(exc)) from None
    if response.status_code != 200:
        raise RequestFailed(f"HTTP {response.status_code}: {_error_message(response)}")
    try:
        document = response.json()
    except ValueError:
        raise RequestFailed("the gateway answered something that is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("pages"), list):
        raise RequestFailed("the gateway answered JSON that is not a document")
    return document


def _error_message(response: httpx.Response) -> str:
    """The message of an OpenAI-shaped error body, or the start of whatever else came back."""
    try:
        message = response.json()["error"]["message"]
        if isinstance(message, str) and message:
            return message
    except (ValueError, KeyError, TypeError):
        pass
    text = " ".join(response.text.split())
    return text[:200] or response.reason_phrase


def _describe(exc: httpx.HTTPError) -> str:
    """One line for a transport failure; httpx's own messages can be empty (e.g. a bare ReadTimeout)."""
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting timed out",
            httpx.ReadTimeout: "no answer within --timeout",
            httpx.WriteTimeout: "sending the file timed out",
            httpx.PoolTimeout: "no free connection in time",
        }.get(type(exc), "timed out")
        return kind
    detail = str(exc)
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {detail or 'refused'}"
    if isinstance(exc, httpx.TransportError):
        return f"the connection broke ({type(exc).__name__}{': ' + detail if detail else ''})"
    return detail or type(exc).__name__
